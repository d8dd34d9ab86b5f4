"""tasks.doit.state and session: doit's records survive SIGKILL and SIGTERM; half a save is
never written; a task about to run loses its old record; a killed run's builds are stopped."""

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
from doit.plugin import PluginDict
from multiarch.tasks.doit import cmdline, processes, session, state
from multiarch.tasks.model.manifest import Manifest

ROOT = Path(__file__).resolve().parents[3]

# A dodo.py with two python-action tasks: `first` finishes, `second` waits to be killed.
DODO = '''
import pathlib, time
from multiarch.tasks.doit import processes, state

DOIT_CONFIG = {"backend": state.BACKEND if COMMIT else "sqlite3", "dep_file": "state.db",
               "verbosity": 2}
if SIGTERM:
    processes.interrupt_on_sigterm()

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


# A task whose side effect (a tag, here a file) is made before it finishes, with VERSION B;
# its first action voids its record, as generate.Run.recorded makes it.
REVERTED = '''
import os, pathlib, time
from multiarch.tasks.doit import state

VERSION = os.environ["VERSION"]
DOIT_CONFIG = {"backend": state.BACKEND, "dep_file": "state.db", "verbosity": 2}

def publish():
    pathlib.Path("published").write_text(VERSION)
    if VERSION == "B":
        time.sleep(120)
    return {"version": VERSION}

def same_version(task, values):
    return values.get("version") == VERSION

def task_publish():
    return {"actions": [(state.void_record, [os.path.abspath("state.db")]), publish],
            "uptodate": [same_version]}
'''


def fake_task(name: str, values: dict, result=None) -> SimpleNamespace:
    return SimpleNamespace(name=name, values=values, result=result, file_dep=set())


def rows(path: Path) -> dict[str, str]:
    """What another process would read from the file right now."""
    with sqlite3.connect(path) as conn:
        return dict(conn.execute("select task_id, task_data from doit"))


def committing(path: Path) -> Dependency:
    return Dependency(state.CommittingSqliteDB, str(path))


def test_doit_finds_the_backend_by_its_entry_point():
    """pyproject.toml's doit.BACKEND entry point, installed by `pip install -e .`."""
    found = PluginDict()
    found.add_plugins({}, "BACKEND")
    backend = found.get_plugin(state.BACKEND)
    assert (backend.__module__, backend.__qualname__) == (
        state.CommittingSqliteDB.__module__, state.CommittingSqliteDB.__qualname__)


def test_each_save_and_remove_is_on_disk_before_the_run_ends(tmp_path):
    path = tmp_path / "doit.db"
    dep = committing(path)
    dep.save_success(fake_task("push:a", {"digests": {"r:v1": "sha256:1"}}))
    assert '"sha256:1"' in rows(path)["push:a"]
    dep.remove_success(fake_task("push:a", {}))
    assert "push:a" not in rows(path)
    dep.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("pragma journal_mode").fetchone()[0] == "wal"


def test_a_saved_record_is_new_and_ignore_is_written_at_the_end(tmp_path):
    path = tmp_path / "doit.db"
    dep = committing(path)
    dep.save_success(fake_task("build:a", {"input_digest": "old"}, result={"image_id": "1"}))
    dep.save_success(fake_task("build:a", {"input_digest": "new"}))
    assert '"result:"' not in rows(path)["build:a"]  # nothing of the old record carried over
    assert dep.get_values("build:a") == {"input_digest": "new"}
    dep.ignore(fake_task("build:b", {}))  # `doit ignore`: a key alone, written by dump
    assert "build:b" not in rows(path)
    dep.close()
    assert '"ignore:"' in rows(path)["build:b"]
    dep = committing(path)
    dep.remove_all()
    assert rows(path) == {}


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


def test_a_task_about_to_run_voids_its_record_in_the_file(tmp_path):
    path = tmp_path / "doit.db"
    dep = committing(path)
    for name in ("push:a", "push:b"):
        dep.save_success(fake_task(name, {"digests": {"r:v1": "sha256:1"}}))
    state.void_record(str(path), SimpleNamespace(name="push:a"))  # from another connection
    assert rows(path).keys() == {"push:b"}
    dep.save_success(fake_task("push:a", {"digests": {"r:v1": "sha256:2"}}))  # it finished
    assert '"sha256:2"' in rows(path)["push:a"]
    dep.close()


def manifest(tmp_path: Path) -> Manifest:
    return Manifest(tmp_path / "multiarch.yaml", "localhost:5000", (), ())


@pytest.mark.parametrize(("argv", "records"), [
    ([], "state"), (["-n", "2", "build"], "state"), (["--db-file", "x.db", "build"], "x.db"),
    (["--backend", "json", "build"], None), (["list", "--backend=dbm"], None),
])
def test_the_records_voided_are_those_of_our_backend(tmp_path, monkeypatch, argv, records):
    monkeypatch.chdir(tmp_path)  # doit runs in the dodo's folder: --db-file is taken from there
    found = session._records(cmdline.read(argv), manifest(tmp_path))
    expected = {"state": str(state.db_path(tmp_path / ".multiarch")),
                "x.db": str(tmp_path / "x.db"), None: None}[records]
    assert found == expected


def test_a_backend_not_installed_is_one_line(tmp_path, monkeypatch, capsys):
    def missing(name):
        raise session.importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(session.importlib.metadata, "distribution", missing)
    with pytest.raises(SystemExit) as stopped:
        session._records(cmdline.read(["build"]), manifest(tmp_path))
    assert stopped.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("multiarch: doit's state backend 'multiarch' is not installed")
    assert session._records(cmdline.read(["--backend", "sqlite3"]), manifest(tmp_path)) is None


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


def publish(tmp_path: Path, version: str, background: bool = False, options=()):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "VERSION": version}
    argv = [sys.executable, "-m", "doit", "run", *options, "publish"]
    if not background:
        return subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, check=True)
    return subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                            start_new_session=True)


@pytest.mark.parametrize("options", [(), ("-n", "2", "-P", "process")])
def test_a_task_stopped_half_way_is_not_done_when_the_inputs_return(tmp_path, options):
    (tmp_path / "dodo.py").write_text(REVERTED)
    publish(tmp_path, "A")
    assert status(tmp_path, VERSION="B") == {"publish": "R"}
    assert status(tmp_path, VERSION="A") == {"publish": "U"}  # `list` forgets nothing

    process = publish(tmp_path, "B", background=True, options=options)
    deadline = time.monotonic() + 60
    while (tmp_path / "published").read_text() != "B":
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)  # the run and its `-P process` workers, which
    process.wait(timeout=30)                 # would wait for the dead run's queue for ever

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
        while left.pid not in processes.leftover_builds(state_dir):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert processes.stop_leftover_builds(state_dir) == [left.pid]
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
        "from multiarch.tasks.doit import processes\n"
        "processes.interrupt_on_sigterm()\n"
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


OPEN = """\
import signal, sys
from doit import doit_cmd
from multiarch.tasks.doit import lock, session
doit_cmd.reset_vars()
doit_cmd.set_var("manifest", sys.argv[1])
run = session.open(sys.argv[2], sys.argv[3:])
print(bool(lock._held), signal.getsignal(signal.SIGTERM) is signal.default_int_handler,
      run.records, run.manifest.images[0].name)
"""


@pytest.mark.parametrize(("argv", "locked", "sigterm"), [
    (["build"], True, True), (["forget"], True, False), (["list", "--all"], False, False),
])
def test_the_session_reads_the_command_once_and_acts_on_it(tmp_path, argv, locked, sigterm):
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "multiarch.yaml").write_text(
        "version: 1\nregistry: localhost:5000\nplatforms: [linux/amd64]\n"
        "images:\n  app: {context: app}\n")
    done = subprocess.run([sys.executable, "-c", OPEN, "multiarch.yaml", str(tmp_path), *argv],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    records = tmp_path / ".multiarch" / "doit.db"
    assert done.stdout.split() == [str(locked), str(sigterm), str(records), "app"]
