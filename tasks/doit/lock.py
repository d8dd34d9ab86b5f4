"""One doit run at a time per workspace: an flock on `.multiarch/lock`, held until exit.

Taken by the session dodo.py opens, before doit reads its state database or checks any
task, so a second `doit build` started meanwhile waits, then decides what is up to date
from what the first one left (its database written, its tags pushed) instead of from stale
state.
"""

import contextlib
import fcntl
import multiprocessing
import os
import sys
import time
from pathlib import Path

# doit commands that only read: they never wait for a running build.
READ_ONLY = frozenset({"list", "info", "dumpdb", "help", "tabcompletion"})
_held: dict[Path, int] = {}  # lock path → open descriptor, for the life of the process


def hold_for_command(state_dir: Path, command: str) -> bool:
    """Take the workspace lock unless the doit ``command`` only reads (`list`, `info`, ...);
    True if another run had it first (see ``hold``)."""
    return hold(state_dir) if command not in READ_ONLY else False


def hold(state_dir: Path) -> bool:
    """Lock ``state_dir``/lock for this process, waiting (with one line on stderr) while
    another process has it. Released by the kernel when the process ends, however it ends.
    True if it waited: what was looked at before may have changed meanwhile.

    Idempotent, and a no-op in a `doit -P process` worker: its parent holds the lock. A
    folder that cannot be locked (read-only, no flock) is used without the lock, said once.
    """
    path = state_dir / "lock"
    if path in _held or multiprocessing.parent_process() is not None:
        return False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        _say(f"cannot lock {path} ({err.strerror}); running without the lock")
        return False
    waited = False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        waited = True
        try:
            _say(f"waiting for another doit run on {state_dir.parent} ({_holder(fd)})")
            fcntl.flock(fd, fcntl.LOCK_EX)
        except KeyboardInterrupt:
            _say("stopped waiting; nothing was run")
            raise SystemExit(130) from None
    except OSError as err:
        os.close(fd)
        _say(f"cannot lock {path} ({err.strerror}); running without the lock")
        return False
    with contextlib.suppress(OSError):  # who holds it is for the message only
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {time.time():.0f}\n".encode(), 0)
    if not _held:  # the first lock this process takes
        os.register_at_fork(after_in_child=_close_in_child)
    _held[path] = fd
    return waited


def _close_in_child() -> None:
    """A forked worker lets go of its copy (closing, not unlocking, which would free it for
    every copy), so the lock ends with the run's own process even if a worker lingers."""
    for fd in _held.values():
        with contextlib.suppress(OSError):
            os.close(fd)
    _held.clear()


def _holder(fd: int) -> str:
    """"pid 1234, since 12:01:02" from what the holder wrote into the lock file."""
    with contextlib.suppress(OSError, ValueError):
        pid, since = os.pread(fd, 64, 0).decode().split()
        return f"pid {int(pid)}, since {time.strftime('%H:%M:%S', time.localtime(int(since)))}"
    return "pid unknown"


def _say(text: str) -> None:
    sys.stderr.write(f"multiarch: {text}\n")
    sys.stderr.flush()
