"""doit's state, committed task by task: a doit backend plugin, and the action that voids a
task's record before the task runs.

doit 0.37's backends (sqlite3, dbm, json) keep a run's records in memory and write them once,
when the run ends. Ctrl-C gets there (KeyboardInterrupt unwinds through doit's `finish`);
SIGTERM and SIGKILL do not, and every task the run finished is forgotten. Forgetting is safe
(a forgotten push is checked against the registry, or re-done) but slow, so this backend
writes each task's record in its own transaction as soon as doit has saved it: a SIGKILL
loses at most the tasks still running.

doit finds the backend through the entry point group `doit.BACKEND` (pyproject.toml), and
dodo.py's DOIT_CONFIG selects it by name; `--backend json` or `dbm` stays the user's choice.
"""

import json
import sqlite3
from pathlib import Path

from doit.dependency import SqliteDB

BACKEND = "multiarch"  # its name under doit.BACKEND, as DOIT_CONFIG["backend"] selects it
# Dependency.save_success (doit 0.37) writes a task's record key by key: "_values_:" first,
# "deps:" last. "ignore:" (`doit ignore`) is written alone.
FIRST_KEY, LAST_KEY, IGNORE_KEY = "_values_:", "deps:", "ignore:"


def db_path(state_dir: Path) -> Path:
    """Where doit's state lives in a workspace (DOIT_CONFIG["dep_file"])."""
    return state_dir / "doit.db"


class CommittingSqliteDB(SqliteDB):
    """doit's sqlite3 backend in WAL mode that commits each task's record on its own.

    A record doit saves is gathered aside and goes in, whole and in one transaction, when
    doit writes its last key (doit 0.37's Dependency.save_success writes "deps:" last): a
    KeyboardInterrupt inside doit's save leaves the record as last committed, and `dump` at
    the run's end writes no half of it. A removal is
    committed at once. WAL with synchronous=FULL: each commit is an append to the log and
    one fsync, on disk before the next step starts. A no-op run commits nothing.
    """

    desc = "sqlite3 (WAL), each task's record committed as soon as doit saves it"

    def __init__(self, name, codec, *, module_name=None):
        super().__init__(name, codec, module_name=module_name)
        self._conn.execute("pragma journal_mode=wal")
        self._conn.execute("pragma synchronous=full")
        self._saving: dict[str, dict] = {}  # records doit is saving, not yet whole
        self._rows: dict[str, dict] | None = None  # every stored row, read at the first miss

    def _get_task_data(self, task_id: str) -> dict:
        """A task's stored record. A run checks every task, so every row is read in one query
        at the first miss, and each is handed out once; a later miss reads its row again."""
        if self._rows is None:
            self._rows = {row["task_id"]: row["task_data"]
                          for row in self._conn.execute("select task_id, task_data from doit")}
        if task_id in self._rows:
            return self._rows.pop(task_id)
        return super()._get_task_data(task_id)

    def set(self, task_id: str, dependency: str, value) -> None:
        if dependency == IGNORE_KEY:
            super().set(task_id, dependency, value)  # written when the run ends, as doit does
            return
        if dependency == FIRST_KEY:  # a new record: no key of the old one is carried over
            self._saving[task_id] = {}
        record = self._saving.setdefault(task_id, {})
        record[dependency] = value
        if dependency == LAST_KEY:
            self._cache[task_id] = self._saving.pop(task_id)
            self._dirty.discard(task_id)
            self._conn.execute("insert or replace into doit values (?,?)",
                               (task_id, self.codec.encode(record)))
            self._conn.commit()

    def remove(self, task_id: str) -> None:
        self._saving.pop(task_id, None)
        if self._rows is not None:
            self._rows.pop(task_id, None)
        super().remove(task_id)
        self._conn.commit()

    def remove_all(self) -> None:
        self._saving.clear()
        self._rows = {}
        super().remove_all()
        self._conn.commit()


def void_record(dep_file: str, task) -> None:
    """A task's first action: delete its record from the state DB at ``dep_file`` before
    its real work starts (doit passes ``task``).

    A push stopped half-way may have moved a tag, and the old record must not call the task
    done should its inputs return to what they were. An action, not a hook in this process,
    so it also runs in a `doit -P process` worker; it opens its own connection, as doit's
    is not shared across threads. doit writes the new record once the task succeeded.
    """
    conn = sqlite3.connect(dep_file, timeout=30)
    try:
        conn.execute("pragma synchronous=full")
        conn.execute("delete from doit where task_id=?", (task.name,))
        conn.commit()
    finally:
        conn.close()


def saved_values(dep_file: str) -> dict[str, dict]:
    """What doit saved for each task ("_values_:": a build's input digest, a push's digests),
    as committed in the state DB at ``dep_file``: read over a connection of its own, as doit's
    is not shared across threads. Nothing when there is no DB yet."""
    try:
        conn = sqlite3.connect(f"file:{dep_file}?mode=ro", uri=True, timeout=30)
    except sqlite3.OperationalError:
        return {}
    try:
        rows = conn.execute("select task_id, task_data from doit").fetchall()
    except sqlite3.OperationalError:
        return {}
    finally:
        conn.close()
    return {task_id: json.loads(data).get(FIRST_KEY) or {} for task_id, data in rows}
