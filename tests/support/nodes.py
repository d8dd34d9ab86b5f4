"""The "node" engine scripts/engine starts for routing tests: check it, stop it, start it again.

Only this engine is ever stopped: the default and classic engines are shared with everyone
on the machine. Starting goes through `scripts/engine up-node`, so a restarted node is exactly
what `scripts/engine up` leaves.
"""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NODE = "unix:///run/multiarch-node/docker.sock"
ENGINE_DIR = Path(os.environ.get("MULTIARCH_ENGINE_DIR", "/opt/multiarch-engine"))
PIDFILE = ENGINE_DIR / "run" / "node-dockerd.pid"


def answers(host: str = NODE) -> bool:
    result = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"],
                            capture_output=True, text=True, timeout=30,
                            env={**os.environ, "DOCKER_HOST": host})
    return result.returncode == 0


def require_node() -> None:
    """Skip without the node engine on a laptop; in CI (CI=true) its absence is a failure."""
    if answers():
        return
    message = f"no node engine answers at {NODE}: run `scripts/engine up` first"
    if os.environ.get("CI") == "true":
        pytest.fail(f"integration tests cannot run in CI: {message}", pytrace=False)
    pytest.skip(message)


def pid() -> int | None:
    try:
        value = int(PIDFILE.read_text().strip())
    except (OSError, ValueError):
        return None
    return value if Path(f"/proc/{value}").exists() else None


def stop(timeout: float = 30) -> None:
    """Stop the node's dockerd as `systemctl stop docker` does (SIGTERM), and wait for it."""
    found = pid()
    if found is None:
        return
    os.kill(found, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{found}").exists():
        if time.monotonic() > deadline:
            os.kill(found, signal.SIGKILL)
            break
        time.sleep(0.1)


def start() -> None:
    """Start the node again, as `scripts/engine up` would; returns once it answers."""
    subprocess.run([str(ROOT / "scripts" / "engine"), "up-node"], check=True,
                   capture_output=True, text=True, timeout=120)
    if not answers():
        raise RuntimeError(f"the node engine did not come back at {NODE}")
