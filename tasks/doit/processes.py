"""The run's processes: SIGTERM handled like Ctrl-C, and the docker builds a killed run left
behind stopped before this one builds."""

import contextlib
import os
import signal
import sys
import threading
import time
from pathlib import Path


def interrupt_on_sigterm() -> None:
    """SIGTERM raises KeyboardInterrupt, so doit stops as on Ctrl-C and keeps what finished.

    Only the main thread may set a handler; elsewhere (doit driven from a thread) nothing changes.
    A worker forked by `doit -P process` gets SIGTERM's default back: doit terminates its
    workers with SIGTERM and means them to stop, not to unwind like the run itself.
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        os.register_at_fork(after_in_child=_default_sigterm)


def _default_sigterm() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def leftover_builds(state_dir: Path) -> list[int]:
    """Docker or podman CLI processes whose command line names a file in ``state_dir``
    (`--iidfile`, `--metadata-file`): with the workspace lock held, only a killed run can have
    left them."""
    prefix = (str(state_dir) + os.sep).encode()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            argv = Path(entry.path, "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if os.path.basename(argv[0]).startswith((b"docker", b"podman")) and any(
                arg.startswith(prefix) for arg in argv[1:]):
            found.append(int(entry.name))
    return found


def stop_leftover_builds(state_dir: Path, timeout: float = 10.0) -> list[int]:
    """Stop the `docker build`s a killed run left behind, before this run builds again.

    They would race this run's identical builds in BuildKit (which can fail one with
    "snapshot ... does not exist") and could tag an older image after this run's. SIGTERM
    makes the CLI cancel its build; what still runs after ``timeout`` s gets SIGKILL. Only
    on Linux (/proc). Returns the pids stopped.
    """
    if not os.path.isdir("/proc"):
        return []
    stopped = pids = leftover_builds(state_dir)
    if stopped:
        sys.stderr.write(f"multiarch: stopping {len(stopped)} docker processes a killed run "
                         f"left (pids {', '.join(map(str, stopped))})\n")
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while pids and time.monotonic() < deadline:
            time.sleep(0.05)
            pids = [pid for pid in pids if _alive(pid)]
        if not pids:
            break
    return stopped


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting for a parent that may never reap it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
