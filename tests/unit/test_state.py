"""tasks.state: doit's records survive SIGKILL and SIGTERM; half a save is never written."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from doit.dependency import Dependency, SqliteDB
from multiarch.tasks.doit import state

ROOT = Path(__file__).resolve().parents[2]

# A dodo.py with two python-action tasks: `first` finishes, `second` waits to be killed.
DODO = '''
import pathlib, time
from doit.globals import Globals
from multiarch.tasks.doit import state

DOIT_CONFIG = {"backend": "sqlite3", "dep_file": "state.db", "verbosity": 2}

def task_state():
    if COMMIT:
        state.commit_each_task(Globals.dep_manager)
    if SIGTERM:
        state.interrupt_on_sigterm()

def saved(task, values):
    return bool(values)

def done():
    pathlib.Path("first.done").touch()
    return {"digest": "sha256:1"}

def wait():
    pathlib.Path("second.started").touch()
    time.sleep(120)

def task_first():
    return {"actions": [done], "uptodate": [saved]}

def task_second():
    return {"actions": [wait], "task_dep": ["first"], "uptodate": [saved]}
'''


# A task whose side effect (a tag, here a file) is made before it finishes, with VERSION B.
REVERTED = '''
import os, pathlib, time
from doit.globals import Globals
from multiarch.tasks.doit import state

VERSION = os.environ["VERSION"]
DOIT_CONFIG = {"backend": "sqlite3", "dep_file": "state.db", "verbosity": 2}

def task_state():
    state.commit_each_task(Globals.dep_manager)

def publish():
    pathlib.Path("published").write_text(VERSION)
    if VERSION == "B":
        time.sleep(120)
    return {"version": VERSION}

def task_publish():
    return {"actions": [publish],
            "uptodate": [lambda task, values: values.get("version") == VERSION]}
'''


def fake_task(name: str, values: dict) -> SimpleNamespace:
    return SimpleNamespace(name=name, values=values, result=None, file_dep=set())


def rows(path: Path) -> dict[str, str]:
    """What another process would read from the file right now."""
    with sqlite3.connect(path) as conn:
        return dict(conn.execute("select task_id, task_data from doit"))


def committing(path: Path) -> Dependency:
    dep = Dependency(SqliteDB, str(path))
    state.commit_each_task(dep, running=False)
    return dep


def test_each_save_and_remove_is_on_disk_before_the_run_ends(tmp_path):
    path = tmp_path / "doit.db"
    dep = committing(path)
    assert isinstance(dep.backend, state.CommittingSqliteDB)
    dep.save_success(fake_task("push:a", {"digests": {"r:v1": "sha256:1"}}))
    assert '"sha256:1"' in rows(path)["push:a"]
    dep.remove_success(fake_task("push:a", {}))
    assert "push:a" not in rows(path)
    dep.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("pragma journal_mode").fetchone()[0] == "wal"


def test_rows_read_in_one_query_are_each_handed_out_once(tmp_path):
    path = tmp_path / "doit.db"
    dep = committing(path)
    for name in ("build:a", "build:b", "build:c"):
        dep.save_success(fake_task(name, {"input_digest": name}))
    dep.close()
    dep = committing(path)
    assert dep.get_values("build:a") == {"input_digest": "build:a"}  # read all three rows
    dep.remove_success(fake_task("build:b", {}))  # never read here: its row must not return
    assert dep.get_values("build:b") == {}
    dep.backend.remove_all()
    assert dep.get_values("build:c") == {}
    dep.save_success(fake_task("build:a", {"input_digest": "new"}))
    dep.backend.forget("build:a")  # read again: the row last committed
    assert dep.get_values("build:a") == {"input_digest": "new"}


def test_a_save_interrupted_half_way_keeps_the_last_committed_record(tmp_path):
    path = tmp_path / "doit.db"
    dep = committing(path)
    dep.save_success(fake_task("build:a", {"input_digest": "old"}))

    class Interrupted:  # doit reads task.result after saving the values
        name, values, file_dep = "build:a", {"input_digest": "new"}, set()

        @property
        def result(self):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        dep.save_success(Interrupted())
    dep.close()  # what doit's finish() does after Ctrl-C
    assert '"old"' in rows(path)["build:a"]
    assert Dependency(SqliteDB, str(path)).get_values("build:a") == {"input_digest": "old"}


def test_other_backends_are_left_as_chosen(tmp_path):
    from doit.dependency import JsonDB

    dep = Dependency(JsonDB, str(tmp_path / "doit.json"))
    state.commit_each_task(dep)
    assert type(dep.backend) is JsonDB
    state.commit_each_task(None)


def run_until_second_started(tmp_path: Path, commit: bool, sigterm: bool) -> subprocess.Popen:
    (tmp_path / "dodo.py").write_text(f"COMMIT, SIGTERM = {commit}, {sigterm}\n" + DODO)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-m", "doit", "run", "second"], cwd=tmp_path,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while not (tmp_path / "second.started").exists():
        assert process.poll() is None, process.stdout.read().decode()
        assert time.monotonic() < deadline, "the second task never started"
        time.sleep(0.05)
    return process


def status(tmp_path: Path, **variables: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **variables}
    listed = subprocess.run([sys.executable, "-m", "doit", "list", "--all", "--status"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    return {line.split()[1]: line.split()[0] for line in listed.stdout.splitlines()}


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_a_finished_task_stays_done_after_the_run_is_killed(tmp_path, sig):
    process = run_until_second_started(tmp_path, commit=True, sigterm=True)
    process.send_signal(sig)
    process.wait(timeout=30)
    assert status(tmp_path) == {"first": "U", "second": "R"}


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_doits_own_backend_forgets_the_whole_run(tmp_path, sig):
    """The problem this module solves: doit's sqlite3 backend writes only when the run ends."""
    process = run_until_second_started(tmp_path, commit=False, sigterm=False)
    process.send_signal(sig)
    process.wait(timeout=30)
    assert (tmp_path / "first.done").exists()
    assert status(tmp_path) == {"first": "R", "second": "R"}


def test_sigterm_alone_saves_like_ctrl_c(tmp_path):
    process = run_until_second_started(tmp_path, commit=False, sigterm=True)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)
    assert status(tmp_path) == {"first": "U", "second": "R"}


@pytest.mark.parametrize(
    ("argv", "expected"),
    [([], True), (["-n", "2", "build"], True), (["build", "verify=0"], True),
     (["run", "build"], True), (["manifest=x.yaml", "list", "--all"], False),
     (["info", "build"], False), (["forget", "build"], False)],
)
def test_runs_tasks_reads_the_command_as_doit_does(argv, expected):
    assert state.runs_tasks(argv) is expected


def publish(tmp_path: Path, version: str, background: bool = False):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "VERSION": version}
    argv = [sys.executable, "-m", "doit", "run", "publish"]
    if not background:
        return subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, check=True)
    return subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL)


def test_a_task_stopped_half_way_is_not_done_when_the_inputs_return(tmp_path):
    (tmp_path / "dodo.py").write_text(REVERTED)
    publish(tmp_path, "A")
    assert status(tmp_path, VERSION="B") == {"publish": "R"}
    assert status(tmp_path, VERSION="A") == {"publish": "U"}  # `list` forgets nothing

    process = publish(tmp_path, "B", background=True)
    deadline = time.monotonic() + 60
    while (tmp_path / "published").read_text() != "B":
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)

    # What A's run made is gone ("published" says B): A's old record must not stand.
    assert status(tmp_path, VERSION="A") == {"publish": "R"}
    publish(tmp_path, "A")
    assert (tmp_path / "published").read_text() == "A"
    assert status(tmp_path, VERSION="A") == {"publish": "U"}


def fake_docker(*args: str) -> subprocess.Popen:
    """A process that looks like `docker-buildx ... <args>` in /proc, and sleeps."""
    return subprocess.Popen(["docker-buildx", "-c", "import time; time.sleep(300)", *args],
                            executable=sys.executable)


def test_a_killed_runs_docker_builds_are_stopped_before_a_run(tmp_path):
    state_dir = tmp_path / ".multiarch"
    left = fake_docker("--iidfile", f"{state_dir}/iid/demo-arm64")
    other = fake_docker("--iidfile", f"{tmp_path}/.multiarch2/iid/demo-arm64")  # not ours
    try:
        deadline = time.monotonic() + 30
        while left.pid not in state.leftover_builds(state_dir):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert state.stop_leftover_builds(state_dir, running=False) == []
        assert state.stop_leftover_builds(state_dir, running=True) == [left.pid]
        assert left.wait(timeout=10) == -signal.SIGTERM
        assert other.poll() is None
    finally:
        for process in (left, other):
            process.kill()
            process.wait()


def test_a_forked_worker_gets_sigterms_default_back(tmp_path):
    # doit -P process forks workers and stops them with SIGTERM: they must die, not unwind.
    script = tmp_path / "fork.py"
    script.write_text(
        "import os, signal, time\n"
        "from multiarch.tasks.doit import state\n"
        "state.interrupt_on_sigterm()\n"
        "assert signal.getsignal(signal.SIGTERM) is signal.default_int_handler\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    time.sleep(30)\n"
        "    os._exit(0)\n"
        "time.sleep(0.5)\n"
        "os.kill(pid, signal.SIGTERM)\n"
        "print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))\n")
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=20, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.stdout.strip() == str(-signal.SIGTERM), result.stderr
    assert "KeyboardInterrupt" not in result.stderr
