"""The "node" engine scripts/engine starts for routing tests: check it, stop it, start it again.

Only this engine is ever stopped: the default and classic engines are shared with everyone
on the machine. Starting goes through `scripts/engine up-node`, so a restarted node is exactly
what `scripts/engine up` leaves.
"""

import contextlib
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
# The Podman node: a `podman system service` reached as this `podman system connection`.
PODMAN_NODE = "multiarch-podman-node"
PODMAN_PIDFILE = ENGINE_DIR / "run" / "podman-node.pid"


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


def pid(pidfile: Path = PIDFILE) -> int | None:
    try:
        value = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    return value if Path(f"/proc/{value}").exists() else None


def stop(timeout: float = 30, pidfile: Path = PIDFILE) -> None:
    """Stop the node's dockerd as `systemctl stop docker` does (SIGTERM), and wait for it;
    or, by its ``pidfile``, the Podman node's service."""
    found = pid(pidfile)
    if found is None:
        return
    os.kill(found, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{found}").exists():
        if time.monotonic() > deadline:
            os.kill(found, signal.SIGKILL)
            break
        time.sleep(0.1)


def start(podman: bool = False) -> None:
    """Start the node (or the Podman node) again, as `scripts/engine up` would; returns once
    it answers."""
    subprocess.run([str(ROOT / "scripts" / "engine"), "up-podman-node" if podman else "up-node"],
                   check=True, capture_output=True, text=True, timeout=120)
    if not podman and not answers():
        raise RuntimeError(f"the node engine did not come back at {NODE}")


def emulated_processes(token: str, machine: str = "aarch64") -> list[int]:
    """Pids of processes run under QEMU for ``machine`` whose command line holds ``token``.

    This is how a test knows a RUN step is really running: BuildKit's plain progress holds a
    step's header back while another step is still open (up to 10 s), so its output is late.
    """
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if machine.encode() in argv[0] and any(token.encode() in arg for arg in argv[1:]):
            found.append(int(entry.name))
    return found


def wait_for_emulated_process(token: str, process: subprocess.Popen, output: list[str],
                              timeout: float = 120) -> None:
    """Wait until a RUN step holding ``token`` runs under QEMU, while ``process`` lives."""
    deadline = time.monotonic() + timeout
    while not emulated_processes(token):
        assert process.poll() is None, "".join(output)
        assert time.monotonic() < deadline, f"no emulated {token!r} step in:\n{''.join(output)}"
        time.sleep(0.05)


def kill_emulated_processes(token: str) -> None:
    """Kill a RUN step's processes that a stopped dockerd 20.10 left behind.

    They are the PID 1 of their own namespace, so they ignore SIGTERM, and nothing reaps them.
    """
    for pid in emulated_processes(token):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
