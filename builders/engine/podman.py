"""Podman as the engine (issue #18): how to reach a node, and what it is.

Podman has no daemon to ask and no daemon.json: each command is told how to speak to a
registry (`--tls-verify=false`, `--cert-dir`), and a builder node is a `podman system
connection` named with `--connection`.
"""

import functools
import json
import platform as host_platform
import subprocess
from pathlib import Path

from ...tasks.model.engines import PODMAN
from ...tasks.model.files import write_atomic
from ...tasks.model.routing import LOCAL, Node
from .facts import host_arch, is_loopback

PING_TIMEOUT = 10.0  # a connection goes through ssh: slower than a unix socket ping
CERTS_DIR = "certs"  # under the state folder: one --cert-dir per private-CA registry


def podman(node: Node = LOCAL) -> list[str]:
    """The start of every podman command line for ``node``: its connection, if any."""
    return ["podman", "--connection", node.connection] if node.connection else ["podman"]


def tls_flags(host: str, registries=(), state_dir: Path | None = None) -> list[str]:
    """How one podman command speaks to registry ``host``: `--tls-verify=false` for a
    loopback or `insecure: true` registry (Docker's own rule, which Podman does not apply by
    itself), `--cert-dir` holding its `ca:` as ca.crt, or nothing."""
    settings = next((r for r in registries if r.host == host), None)
    if is_loopback(host) or (settings and settings.insecure):
        return ["--tls-verify=false"]
    if settings and settings.ca and state_dir is not None:
        folder = state_dir / CERTS_DIR / host.replace(":", "_")
        write_atomic(folder / "ca.crt", Path(settings.ca).read_text(errors="surrogateescape"))
        return ["--cert-dir", str(folder)]
    return []


def _podman_json(argv: list[str], timeout: float) -> tuple[dict | None, str]:
    """(the parsed JSON a podman command printed, "") or (None, why it did not answer)."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        return None, "podman is not installed (no podman on PATH)"
    except subprocess.TimeoutExpired:
        return None, f"no answer within {timeout:g} s"
    if done.returncode != 0:
        said = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        return None, said.removeprefix("Error: ")
    try:
        return json.loads(done.stdout), ""
    except ValueError:
        return None, "podman info printed no JSON"


def ping(node: Node, timeout: float = PING_TIMEOUT) -> str | None:
    """None when ``node``'s podman answers `podman info`; otherwise why it did not."""
    found, reason = _podman_json([*podman(node), "info", "--format", "json"], timeout)
    return None if found is not None else reason


def facts(node: Node = LOCAL) -> dict:
    """Podman's version, storage driver and architecture, as the doctor reports them."""
    info, reason = _podman_json([*podman(node), "info", "--format", "json"], PING_TIMEOUT)
    if info is None:
        return {"reachable": False, "family": PODMAN, "error": reason,
                "architecture": host_arch(host_platform.machine())}
    host, store = info.get("host") or {}, info.get("store") or {}
    return {"reachable": True, "family": PODMAN,
            "version": (info.get("version") or {}).get("Version", "?"),
            "driver": store.get("graphDriverName", ""),
            "architecture": host_arch(host.get("arch") or host_platform.machine())}


@functools.cache
def arch(node: Node = LOCAL) -> str:
    """The architecture ``node`` builds natively, asked once per process and node."""
    if node.from_environment:
        return host_arch(host_platform.machine())
    return facts(node)["architecture"]
