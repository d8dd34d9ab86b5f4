"""doit's state committed after each task, SIGTERM handled like Ctrl-C, a killed run's builds
stopped before the next run builds.

doit 0.37's backends (sqlite3, dbm, json) keep a run's records in memory and write them once,
when the run ends. Ctrl-C gets there (KeyboardInterrupt unwinds through doit's `finish`);
SIGTERM and SIGKILL do not, and every task the run finished is forgotten. Forgetting is safe
(a forgotten push is checked against the registry, or re-done) but slow, so here each task's
record is written in its own transaction as soon as doit saves it: a SIGKILL loses at most the
tasks still running, and SIGTERM becomes a KeyboardInterrupt. A task about to run again loses
its old record first, so one stopped half-way is never taken for its earlier, finished self.

doit picks its backend by name before it reads dodo.py, and takes other backends only from a
doit.cfg / pyproject.toml in the user's working directory or an installed entry point. So
instead the one dependency manager doit made for this run (`doit.globals.Globals.dep_manager`,
set before task creators run) gets this backend in place of the sqlite3 one it opened on the
same file; nothing has been read or written through that one yet.
"""

import contextlib
import os
import signal
import sys
import threading
import time
from pathlib import Path

from doit.dependency import Dependency, SqliteDB

from . import cmdline


class CommittingSqliteDB(SqliteDB):
    """doit's sqlite3 backend in WAL mode; `commit(task_id)` writes one task's row at once.

    WAL with synchronous=FULL: each commit is an append to the log and one fsync (~0.3 ms
    here), so it is on disk before the next step starts, even across a power cut. A no-op
    run commits nothing.
    """

    def __init__(self, name, codec, *, module_name=None):
        super().__init__(name, codec, module_name=module_name)
        self._conn.execute("pragma journal_mode=wal")
        self._conn.execute("pragma synchronous=full")
        self._rows: dict[str, dict] | None = None  # every row, read at the first miss

    def _get_task_data(self, task_id: str) -> dict:
        """A task's row: all rows are read in one query at the first miss (a no-op checks
        every task, and 801 one-row queries cost ~4 ms more), each handed out once; a later
        miss (after `forget`) reads its row again."""
        if self._rows is None:
            self._rows = {row["task_id"]: row["task_data"]
                          for row in self._conn.execute("select task_id, task_data from doit")}
        if task_id in self._rows:
            return self._rows.pop(task_id)
        return super()._get_task_data(task_id)

    def remove(self, task_id: str) -> None:
        if self._rows is not None:
            self._rows.pop(task_id, None)
        super().remove(task_id)

    def remove_all(self) -> None:
        self._rows = {}
        super().remove_all()

    def commit(self, task_id: str) -> None:
        """Write ``task_id``'s record (or its removal) in one transaction."""
        if task_id in self._dirty:
            self._conn.execute("insert or replace into doit values (?,?)",
                               (task_id, self.codec.encode(self._cache[task_id])))
            self._dirty.discard(task_id)
        self._conn.commit()

    def forget(self, task_id: str) -> None:
        """Drop an unwritten, half-saved record; the row last committed stands."""
        self._cache.pop(task_id, None)
        self._dirty.discard(task_id)


def runs_tasks(argv: list[str]) -> bool:
    """Whether doit's command line ``argv`` (without the program) runs tasks (`run`, also
    when not named), not `list`, `info` or another command that only looks."""
    return cmdline.command(argv) == "run"


def commit_each_task(dep_manager: Dependency | None, running: bool | None = None) -> None:
    """Make ``dep_manager`` write each task's record when doit saves or removes it.

    When the command runs tasks (``running``; by default read from sys.argv), a task found
    not up to date also loses its old record before it runs: a push stopped half-way may
    have moved a tag, and the old record must not call it done should the inputs return to
    what they were. Only doit's own sqlite3 backend is replaced: `--backend json` or `dbm`
    on the command line is left as chosen (written at the end of the run, as doit does).
    """
    if dep_manager is None or type(dep_manager.backend) is not SqliteDB:
        return
    opened = dep_manager.backend
    backend = CommittingSqliteDB(opened.name, opened.codec)
    opened._conn.close()
    dep_manager.backend = backend
    # Dependency binds these in its __init__.
    dep_manager._set, dep_manager._get, dep_manager._in = backend.set, backend.get, backend.in_
    dep_manager.remove, dep_manager.remove_all = backend.remove, backend.remove_all
    save_success, remove_success = dep_manager.save_success, dep_manager.remove_success

    def save_and_commit(task, result_hash=None):
        try:
            save_success(task, result_hash)
        except BaseException:  # a KeyboardInterrupt half-way must not leave half a record
            backend.forget(task.name)
            raise
        backend.commit(task.name)

    def remove_and_commit(task):
        remove_success(task)
        backend.commit(task.name)

    dep_manager.save_success = save_and_commit
    dep_manager.remove_success = remove_and_commit
    if running is None:
        running = runs_tasks(sys.argv[1:])
    if running:
        get_status = dep_manager.get_status

        def get_status_forgetting(task, tasks_dict, get_log=False):
            status = get_status(task, tasks_dict, get_log)
            if status.status == "run":
                backend.remove(task.name)
                backend.commit(task.name)
            return status

        dep_manager.get_status = get_status_forgetting


def leftover_builds(state_dir: Path) -> list[int]:
    """Docker CLI processes whose command line names a file in ``state_dir`` (`--iidfile`,
    `--metadata-file`): with the workspace lock held, only a killed run can have left them."""
    prefix = (str(state_dir) + os.sep).encode()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            argv = Path(entry.path, "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if os.path.basename(argv[0]).startswith(b"docker") and any(
                arg.startswith(prefix) for arg in argv[1:]):
            found.append(int(entry.name))
    return found


def stop_leftover_builds(state_dir: Path, running: bool | None = None,
                         timeout: float = 10.0) -> list[int]:
    """Stop the `docker build`s a killed run left behind, before this run builds again.

    They would race this run's identical builds in BuildKit (which can fail one with
    "snapshot ... does not exist") and could tag an older image after this run's. SIGTERM
    makes the CLI cancel its build; what still runs after ``timeout`` s gets SIGKILL. Only
    for a command that runs tasks, and only on Linux (/proc). Returns the pids stopped.
    """
    if running is None:
        running = runs_tasks(sys.argv[1:])
    if not running or not os.path.isdir("/proc"):
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
