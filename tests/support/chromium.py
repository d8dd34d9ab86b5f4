"""Open a page in headless Chromium (Debian's chromium package, installed by scripts/engine up)."""

import os
import subprocess
import tempfile
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars"]


def require_chromium() -> Path:
    """Skip without Chromium on a laptop; in CI (CI=true) its absence is a failure."""
    if CHROMIUM.exists():
        return CHROMIUM
    message = f"no {CHROMIUM}: run `scripts/engine up` (installs Debian's chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"report tests cannot run in CI: {message}", pytrace=False)
    pytest.skip(message)


def _chromium(page: Path, *flags: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        argv = [str(require_chromium()), *FLAGS, f"--user-data-dir={profile}", *flags,
                page.resolve().as_uri()]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{argv}: {result.stderr[-2000:]}"
    return result


def dump_dom(page: Path) -> str:
    """The DOM as Chromium built it from ``page`` (a file, no server)."""
    return _chromium(page, "--dump-dom").stdout


def screenshot(page: Path, png: Path, size: str = "1200,1000") -> Path:
    _chromium(page, f"--window-size={size}", f"--screenshot={png}")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    return png
