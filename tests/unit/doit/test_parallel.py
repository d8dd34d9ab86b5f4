"""`doit -P process` needs picklable tasks; tasks.doit.lock serialises runs on one workspace."""

import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from doit.loader import load_tasks
from multiarch.builders.registry.probe import RegistryProbe
from multiarch.tasks.doit import cmdline, exports, generate
from multiarch.tasks.doit.lock import READ_ONLY
from multiarch.tasks.model.manifest import load_manifest

ROOT = Path(__file__).resolve().parents[3]

MANIFEST = """\
version: 1
registry: localhost:5000
platforms: [linux/amd64, linux/arm64]
registries:
  "localhost:5000": {insecure: true}
images:
  base: {context: base, tags: [v1]}
  app: {context: app}
  bx:
    context: app
    strategy: buildx
    fallback: manifest
    outputs: [{type: registry}, {type: oci, dest: out/bx.tar}, {type: local, dest: "out/{arch}"}]
"""


@pytest.fixture
def run(tmp_path) -> generate.Run:
    for name, base in (("base", "busybox:1.35"), ("app", "localhost:5000/base:v1")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "Dockerfile").write_text(f"FROM {base}\nCOPY f /f\n")
        (tmp_path / name / "f").write_text(name)
    (tmp_path / "multiarch.yaml").write_text(MANIFEST)
    return generate.Run.of(load_manifest(tmp_path / "multiarch.yaml"))


def test_every_task_pickles_as_process_workers_receive_it(run):
    """spawn and forkserver (macOS, Python 3.14) pickle each Task, actions included."""
    namespace = {
        "task_build": lambda: generate.build_tasks(run),
        "task_push": lambda: generate.push_tasks(run),
        "task_manifest": lambda: generate.manifest_tasks(run),
        "task_inspect": lambda: generate.inspect_tasks(run),
        "task_export": lambda: exports.export_tasks(run),
        "task_status": lambda: generate.status_task(run),
        "task_registries": lambda: generate.registries_task(run),
        "task_buildkitd": lambda: generate.buildkitd_task(run),
    }
    tasks = load_tasks(namespace)
    assert len(tasks) > 20
    for task in tasks:
        copy = pickle.loads(pickle.dumps(task))
        assert [repr(a) for a in copy.actions] == [repr(a) for a in task.actions], task.name


def test_inputs_rebuild_their_lock_and_memos_in_a_worker(run):
    image = run.manifest.image("app")
    platform = image.platforms[0]
    digest = run.inputs.digest(image, platform)
    copy = pickle.loads(pickle.dumps(run.inputs))
    assert copy._digests == {} and copy.skip == run.inputs.skip
    assert copy.digest(image, platform) == digest  # same inputs, same digest, own lock
    assert copy.probe.expected == run.probe.expected


def test_probe_pickles_without_its_answers():
    probe = RegistryProbe(retries=7)
    probe.expect(["localhost:5000/a:v1"])
    probe.digests["localhost:5000/a:v1"] = "sha256:0"
    probe._mirrors = ["127.0.0.1:5000"]
    copy = pickle.loads(pickle.dumps(probe))
    assert copy.expected == {"localhost:5000/a:v1"} and copy.digests == {}
    assert (copy.retries, copy._mirrors) == (7, None)  # a worker's retries; asks its own mirrors


@pytest.mark.parametrize("argv, command", [
    ([], "run"),
    (["-n", "4", "-P", "process", "build"], "run"),
    (["run", "build"], "run"),
    (["list", "--all", "--status"], "list"),
    (["manifest=x.yaml", "info", "build:a"], "info"),
    (["forget", "build:a"], "forget"),
    (["-f", "dodo.py", "list"], "list"),  # the loader's options may come first
    (["-n", "2", "list"], "run"),  # ... no other option: this runs a task named "list"
])
def test_the_doit_command_is_read_as_doit_reads_it(argv, command):
    assert cmdline.read(argv).command == command


@pytest.mark.parametrize(("argv", "expected"), [
    ([], ("run", ())),
    (["-n", "2", "build:app", "verify=0"], ("run", ("build:app",))),
    (["-f", "dodo.py", "-n", "2", "build"], ("run", ("build",))),
    (["run", "-v", "2", "status"], ("run", ("status",))),
    (["--continue", "build:a*", "push"], ("run", ("build:a*", "push"))),
    (["-f", "dodo.py", "list", "--all"], ("list", ("--all",))),
    (["manifest=x.yaml", "forget", "build:a"], ("forget", ("build:a",))),
])
def test_the_command_line_is_read_as_doit_reads_it(argv, expected):
    line = cmdline.read(argv)
    assert (line.command, line.args) == expected
    assert (line.backend, line.dep_file) == (None, None)


@pytest.mark.parametrize(("argv", "backend", "dep_file"), [
    (["--backend", "json", "build"], "json", None),
    (["--db-file=other.db", "-n", "2"], None, "other.db"),
    (["list", "--backend", "dbm", "--db-file", "x"], "dbm", "x"),
    (["info", "--backend=sqlite3", "build:a"], "sqlite3", None),
])
def test_the_backend_and_state_file_given_are_read(argv, backend, dep_file):
    line = cmdline.read(argv)
    assert (line.backend, line.dep_file) == (backend, dep_file)


def test_read_only_commands_are_doit_commands():
    assert READ_ONLY.issubset(cmdline.COMMANDS)
    assert "run" not in READ_ONLY and "clean" not in READ_ONLY


HOLD = """\
import sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
from multiarch.tasks.doit import cmdline
from multiarch.tasks.doit.lock import hold_for_command
hold_for_command(Path(sys.argv[1]), cmdline.read(sys.argv[3:]).command)
print("got", time.time(), flush=True)
time.sleep(float(sys.argv[2]))
"""


def holder(state: Path, seconds: float, *argv: str) -> subprocess.Popen:
    code = HOLD.format(root=str(ROOT))
    return subprocess.Popen([sys.executable, "-c", code, str(state), str(seconds), *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def got(process: subprocess.Popen) -> tuple[float, str]:
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    return float(out.split()[1]), err


def test_a_second_run_waits_with_one_line_naming_the_first(tmp_path):
    state = tmp_path / ".multiarch"
    first = holder(state, 1.5, "-n", "4", "build")
    assert first.stdout.readline().startswith("got")
    second = holder(state, 0, "build")
    first_out, first_err = first.communicate(timeout=30)
    released = time.time()
    when, said = got(second)
    assert when >= released - 0.2
    assert first_err == ""
    assert said.startswith(f"multiarch: waiting for another doit run on {tmp_path} "
                           f"(pid {first.pid}, since ")
    assert len(said.splitlines()) == 1
    assert (state / "lock").read_text().split()[0] == str(second.pid)


def test_list_does_not_wait_for_a_run(tmp_path):
    state = tmp_path / ".multiarch"
    first = holder(state, 3, "build")
    assert first.stdout.readline().startswith("got")
    start = time.time()
    when, said = got(holder(state, 0, "list", "--all"))
    assert when - start < 2.5 and said == ""
    first.kill()
    first.communicate()


FORK_AND_EXIT = """\
import os, sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
from multiarch.tasks.doit.lock import hold
hold(Path(sys.argv[1]))
if os.fork() == 0:  # a worker that outlives the run, as a hung `-P process` worker could
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 1)
    os.dup2(null, 2)
    time.sleep(5)
    os._exit(0)
print("forked", flush=True)
"""


@pytest.mark.parametrize("ending", ["killed", "exits leaving a forked worker"])
def test_the_lock_ends_with_the_process_that_took_it(tmp_path, ending):
    state = tmp_path / ".multiarch"
    if ending == "killed":
        first = holder(state, 30, "build")
        assert first.stdout.readline().startswith("got")
        first.kill()
        first.communicate()
    else:
        code = FORK_AND_EXIT.format(root=str(ROOT))
        done = subprocess.run([sys.executable, "-c", code, str(state)], capture_output=True,
                              text=True, timeout=30)
        assert done.stdout == "forked\n", done.stderr
    start = time.time()
    when, said = got(holder(state, 0, "build"))
    assert said == "" and when - start < 2


def test_ctrl_c_while_waiting_is_one_line_and_exit_130(tmp_path):
    state = tmp_path / ".multiarch"
    first = holder(state, 30, "build")
    assert first.stdout.readline().startswith("got")
    second = holder(state, 0, "build")
    assert second.stderr.readline().startswith("multiarch: waiting for another doit run")
    second.send_signal(signal.SIGINT)
    out, err = second.communicate(timeout=30)
    first.kill()
    first.communicate()
    assert (second.returncode, out) == (130, ""), err
    assert err == "multiarch: stopped waiting; nothing was run\n"
