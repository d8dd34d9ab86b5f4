"""tasks.doit.generate, checkers, session; tasks.inputs: task names and dependencies as doit
sees them."""

import os
import re
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
from doit.cmd_base import ModuleTaskLoader
from doit.control import TaskControl
from doit.doit_cmd import DoitMain
from doit.exceptions import TaskFailed
from doit.loader import load_tasks
from multiarch.builders.checks import preflight
from multiarch.builders.errors import DockerError
from multiarch.builders.stages import build, inspect, manifest_list, push
from multiarch.tasks.doit import generate, state
from multiarch.tasks.doit.checkers import inputs_unchanged, still_in_registry
from multiarch.tasks.doit.session import manifest_path
from multiarch.tasks.inputs.digests import input_digest
from multiarch.tasks.inputs.walk import context_digest
from multiarch.tasks.model.manifest import Image, Manifest
from multiarch.tasks.model.platforms import parse_platform

ROOT = Path(__file__).resolve().parents[3]
DODO = ROOT / "dodo.py"
AMD64 = parse_platform("linux/amd64")
ARM64 = parse_platform("linux/arm64")
ARMV7 = parse_platform("linux/arm/v7")
PLATFORMS = (AMD64, ARM64, ARMV7)


def make_image(tmp_path: Path, name: str = "demo", **fields) -> Image:
    context = tmp_path / name
    context.mkdir(exist_ok=True)
    (context / "Dockerfile").write_text("FROM scratch\nCOPY app.sh /\n")
    (context / "app.sh").write_text("echo hello\n")
    values = {
        "context": context,
        "dockerfile": context / "Dockerfile",
        "repository": f"localhost:5000/{name}",
        "tags": ("v1",),
        "platforms": PLATFORMS,
    }
    return Image(name=name, **{**values, **fields})


def make_manifest(tmp_path: Path, *images: Image) -> Manifest:
    return Manifest(tmp_path / "multiarch.yaml", "localhost:5000", PLATFORMS, images)


def namespace(manifest: Manifest, **config) -> dict:
    run = generate.Run.of(manifest, verify=False)
    return {
        "DOIT_CONFIG": config,
        "task_build": lambda: generate.build_tasks(run),
        "task_push": lambda: generate.push_tasks(run),
        "task_manifest": lambda: generate.manifest_tasks(run),
        "task_registries": lambda: generate.registries_task(run),
    }


def doit_tasks(manifest: Manifest) -> dict:
    """The Task objects doit makes of the dicts, after configuring their uptodate items."""
    tasks = load_tasks(namespace(manifest))
    TaskControl(tasks)  # raises InvalidTask for a task_dep that names no task
    return {task.name: task for task in tasks}


@pytest.fixture
def two_images(tmp_path) -> Manifest:
    return make_manifest(tmp_path, make_image(tmp_path, "demo"), make_image(tmp_path, "web"))


def expected_names(images=("demo", "web"), platforms=PLATFORMS, status=False) -> set[str]:
    """Task names; ``status``: as dodo.py lists them, with `status` and `inspect:<image>`."""
    names = {"build", "push", "manifest", "registries"}
    if status:
        names |= {"status", "inspect", "doctor", "export", "buildkitd"}
    for image in images:
        names |= {f"build:{image}", f"manifest:{image}"}
        names |= {f"inspect:{image}"} if status else set()
        names |= {f"{stage}:{image}:{p}" for stage in ("build", "push") for p in platforms}
    return names


# ---------------------------------------------------------------- names and dependencies


def test_two_images_three_platforms_make_20_tasks(two_images):
    tasks = load_tasks(namespace(two_images))
    assert len(tasks) == 3 + 2 * 2 + 2 * 3 * 2 + 1  # groups, image tasks, platforms, registries
    names = {task.name for task in tasks}
    assert names == expected_names()
    assert {"build:demo:linux/arm/v7", "push:web:linux/arm/v7", "manifest:web"} <= names


@pytest.mark.parametrize(
    ("name", "task_dep"),
    [
        ("build:demo", ["manifest:demo"]),
        (
            "manifest:demo",
            ["push:demo:linux/amd64", "push:demo:linux/arm64", "push:demo:linux/arm/v7"],
        ),
        ("push:demo:linux/arm/v7", ["build:demo:linux/arm/v7"]),
        ("push:web:linux/amd64", ["build:web:linux/amd64"]),
        ("build:demo:linux/arm/v7", []),
        ("build:web", ["manifest:web"]),
        (
            "manifest:web",
            ["push:web:linux/amd64", "push:web:linux/arm64", "push:web:linux/arm/v7"],
        ),
    ],
)
def test_task_dep_after_doit_configured_uptodate(two_images, name, task_dep):
    assert doit_tasks(two_images)[name].task_dep == task_dep


@pytest.mark.parametrize("group", ["build", "push", "manifest"])
def test_group_tasks_run_their_subtasks(two_images, group):
    tasks = doit_tasks(two_images)
    subtasks = {name for name in tasks if name.startswith(f"{group}:")}
    assert set(tasks[group].task_dep) == subtasks
    assert len(subtasks) == {"build": 8, "push": 6, "manifest": 2}[group]


def test_docs_name_the_image_and_platform(two_images):
    tasks = doit_tasks(two_images)
    for group in ("build", "push", "manifest"):
        assert "(demo, web)" in tasks[group].doc
    for name, task in tasks.items():
        stage, _, rest = name.partition(":")
        image, _, platform = rest.partition(":")
        assert image in task.doc, name
        if stage == "build" and platform:
            assert f"--platform {platform} " in task.doc, name
    assert tasks["build:web"].doc.startswith("web: ")
    assert "localhost:5000/web:v1-armv7" in tasks["push:web:linux/arm/v7"].doc


def test_step_turns_a_docker_error_into_task_failed():
    def failing(*args):
        raise DockerError("push demo failed", ["docker", "push", "demo:v1"], "denied\n")

    failed = generate.step(failing, "a")
    assert isinstance(failed, TaskFailed)
    assert failed.message == "push demo failed\ncommand: docker push demo:v1\n  denied"
    assert generate.step(lambda *args: {"args": args}, "a", 1) == {"args": ("a", 1)}


# ---------------------------------------------------------------- doit runs the chain


@pytest.fixture
def fake_stages(monkeypatch):
    """Replace the three docker stages with recorders; ``ids`` is what each build yields."""
    calls: list[str] = []
    ids: dict[str, str] = {}

    def fake_build(image, platform, state_dir, inputs, use_registry_cache, registries=(),
                   routing=None, engine=None):
        calls.append(f"build:{image.name}:{platform}")
        return {
            "image_id": ids.get(str(platform), "sha256:1"),
            "refs": list(image.platform_refs(platform)),
        }

    def fake_push(image, platform, state_dir, built, routing=None, registries=(),
                  engine=None):
        calls.append(f"push:{image.name}:{platform}")
        return {
            "digests": {
                ref: ids.get(str(platform), "sha256:1") for ref in image.platform_refs(platform)
            }
        }

    def fake_publish(image, registries=()):
        calls.append(f"manifest:{image.name}")
        return {"lists": {}}

    monkeypatch.setattr(build, "build_or_reuse", fake_build)
    monkeypatch.setattr(push, "push", fake_push)
    monkeypatch.setattr(manifest_list, "publish", fake_publish)
    monkeypatch.setattr(inspect, "inspect", lambda image, registries=(): {"lists": {}})
    monkeypatch.setattr(preflight, "preflight", lambda manifest: None)
    return SimpleNamespace(calls=calls, ids=ids)


def run_doit(manifest: Manifest, db: Path, *args: str) -> int:
    loader = ModuleTaskLoader(namespace(manifest, dep_file=str(db), backend="json"))
    return DoitMain(loader).run(list(args))


def test_doit_runs_builds_then_pushes_then_the_list_and_skips_what_is_unchanged(
    tmp_path, fake_stages, capsys
):
    image = make_image(tmp_path, platforms=(AMD64, ARM64))
    manifest = make_manifest(tmp_path, image)
    db = tmp_path / "doit.json"

    assert run_doit(manifest, db, "build:demo") == 0
    calls = fake_stages.calls
    assert sorted(calls) == sorted(
        [
            "build:demo:linux/amd64",
            "build:demo:linux/arm64",
            "push:demo:linux/amd64",
            "push:demo:linux/arm64",
            "manifest:demo",
        ]
    )
    for platform in ("linux/amd64", "linux/arm64"):
        assert calls.index(f"build:demo:{platform}") < calls.index(f"push:demo:{platform}")
    assert calls[-1] == "manifest:demo"

    calls.clear()
    assert run_doit(manifest, db, "build:demo") == 0
    assert calls == []

    # An edited context rebuilds both; only the platform whose image ID changed is pushed.
    (image.context / "app.sh").write_text("echo hellO\n")
    fake_stages.ids["linux/arm64"] = "sha256:2"
    assert run_doit(manifest, db, "build:demo") == 0
    assert sorted(calls) == [
        "build:demo:linux/amd64",
        "build:demo:linux/arm64",
        "manifest:demo",
        "push:demo:linux/arm64",
    ]
    assert calls[-1] == "manifest:demo"
    capsys.readouterr()


def test_a_changed_tag_republishes_the_list_only(tmp_path, fake_stages):
    image = make_image(tmp_path, platforms=(AMD64,))
    db = tmp_path / "doit.json"
    assert run_doit(make_manifest(tmp_path, image), db, "manifest") == 0
    fake_stages.calls.clear()
    assert run_doit(make_manifest(tmp_path, image), db, "manifest") == 0
    assert fake_stages.calls == []
    # New tags are new per-platform tags too: retag (a cached build), push, list.
    assert run_doit(make_manifest(tmp_path, replace(image, tags=("v2",))), db, "manifest") == 0
    assert fake_stages.calls == ["build:demo:linux/amd64", "push:demo:linux/amd64", "manifest:demo"]


def test_a_dropped_platform_republishes_the_list_only(tmp_path, fake_stages):
    image = make_image(tmp_path, platforms=(AMD64, ARM64))
    db = tmp_path / "doit.json"
    assert run_doit(make_manifest(tmp_path, image), db, "build") == 0
    fake_stages.calls.clear()
    smaller = replace(image, platforms=(AMD64,))
    assert run_doit(make_manifest(tmp_path, smaller), db, "build") == 0
    assert fake_stages.calls == ["manifest:demo"]


# ---------------------------------------------------------------- doit list over dodo.py

MANIFEST_YAML = """\
version: 1
registry: localhost:5000
platforms: [linux/amd64, linux/arm64, linux/arm/v7]
images:
  demo:
    context: src/demo
    tags: [v1]
  web:
    context: src/web
"""


def doit(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "doit", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def project(tmp_path) -> Path:
    """A manifest whose contexts exist only beside it, not beside dodo.py."""
    for name in ("demo", "web"):
        (tmp_path / "src" / name).mkdir(parents=True)
        (tmp_path / "src" / name / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "multiarch.yaml").write_text(MANIFEST_YAML)
    (tmp_path / "elsewhere").mkdir()
    return tmp_path


@pytest.mark.parametrize("invoked_in", [".", "elsewhere"])
def test_doit_list_all_through_dodo_py(project, invoked_in):
    cwd = project / invoked_in
    given = os.path.relpath(project / "multiarch.yaml", cwd)
    done = doit("list", "--all", "-f", str(DODO), f"manifest={given}", cwd=cwd)
    assert (done.returncode, done.stderr) == (0, "")
    assert {line.split()[0] for line in done.stdout.splitlines()} == expected_names(status=True)
    assert (project / ".multiarch").is_dir()


def test_doit_list_over_a_dodo_in_tmp_path(project):
    (project / "dodo.py").write_text(DODO.read_text())
    done = subprocess.run(
        [sys.executable, "-m", "doit", "list", "--all"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert {line.split()[0] for line in done.stdout.splitlines()} == expected_names(status=True)


ERROR_LINE = re.compile(r"multiarch: (?P<file>[^:]+): (?:(?P<key>[^ :]+): )?(?P<message>.+)")


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        (MANIFEST_YAML.replace("version: 1", "version: 2"), "version", "unsupported version 2"),
        (
            MANIFEST_YAML.replace("context: src/web", "contxt: src/web"),
            "images.web.contxt",
            "did you mean 'context'?",
        ),
        (
            MANIFEST_YAML.replace("src/web", "src/missing"),
            "images.web.context",
            "no such directory",
        ),
        (MANIFEST_YAML.replace("linux/arm/v7", "linux/armv9"), "platforms", "unknown architecture"),
        (
            MANIFEST_YAML.replace("tags: [v1]", "tags: [v1, v1]"),
            "images.demo.tags[1]",
            "duplicate tag",
        ),
        ("version: 1\nimages: [demo\n", None, "invalid YAML"),
    ],
    ids=["version", "unknown-key", "context", "platform", "duplicate-tag", "yaml"],
)
def test_invalid_manifest_is_one_line_on_stderr(project, text, key, message):
    bad = project / "bad.yaml"
    bad.write_text(text)
    done = doit("list", "-f", str(DODO), "manifest=bad.yaml", cwd=project)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr + done.stdout
    (line,) = done.stderr.splitlines()
    found = ERROR_LINE.fullmatch(line)
    assert found, line
    # The file is shown relative to where doit runs (the dodo's folder) or to the user.
    shown = found["file"]
    assert bad in {(ROOT / shown).resolve(), (project / shown).resolve()}
    assert found["key"] == key
    assert message in found["message"]


# ---------------------------------------------------------------- inputs


def edit_one_byte(ctx: Path):
    (ctx / "app.sh").write_text("echo hellO\n")


def touch(ctx: Path):
    os.utime(ctx / "app.sh", (1_000_000_000, 1_000_000_000))


def chmod_x(ctx: Path):
    path = ctx / "app.sh"
    path.chmod(path.stat().st_mode | 0o111)


def write_state(ctx: Path):
    (ctx / ".multiarch" / "doit.db").write_text("changed on every run")


def retarget_dir_link(ctx: Path):
    (ctx / "conf").unlink()
    (ctx / "conf").symlink_to(ctx.parent / "conf-b", target_is_directory=True)


@pytest.fixture
def context(tmp_path) -> Path:
    for name in ("conf-a", "conf-b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "app.conf").write_text(name)
    ctx = make_image(tmp_path).context
    (ctx / ".multiarch").mkdir()
    (ctx / ".multiarch" / "doit.db").write_text("state")
    (ctx / "conf").symlink_to(tmp_path / "conf-a", target_is_directory=True)
    return ctx


@pytest.mark.parametrize(
    ("edit", "changed"),
    [
        (touch, False),
        (write_state, False),
        (edit_one_byte, True),
        (chmod_x, True),
        (lambda ctx: (ctx / "app.sh").rename(ctx / "main.sh"), True),
        (lambda ctx: (ctx / "new.txt").write_bytes(b""), True),
        pytest.param(retarget_dir_link, True),
        pytest.param(lambda ctx: (ctx / "data").mkdir(), True),
    ],
    ids=[
        "touch",
        "state-folder",
        "one-byte",
        "chmod+x",
        "rename",
        "new-file",
        "dir-symlink",
        "empty-dir",
    ],
)
def test_context_digest(context, edit, changed):
    skip = (context / ".multiarch",)
    before = context_digest(context, context / "Dockerfile", skip=skip)
    edit(context)
    assert (context_digest(context, context / "Dockerfile", skip=skip) != before) is changed


def test_context_digest_hashes_the_state_folder_unless_skipped(context):
    before = context_digest(context, context / "Dockerfile")
    write_state(context)
    assert context_digest(context, context / "Dockerfile") != before


@pytest.mark.parametrize(
    ("change", "changed"),
    [
        ({}, False),
        ({"build_args": (("VERSION", "2"),)}, True),
        ({"build_args": (("VERSION", "1"), ("EXTRA", ""))}, True),
        ({"target": "runtime"}, True),
        ({"tags": ("v2",)}, True),
        ({"repository": "registry.example.com/demo"}, True),
        ({"platform": ARMV7}, True),
        ({"platform": AMD64}, True),
    ],
    ids=[
        "same",
        "build-arg-value",
        "build-arg-added",
        "target",
        "tags",
        "repository",
        "platform-armv7",
        "platform-amd64",
    ],
)
def test_input_digest(tmp_path, change, changed):
    image = make_image(tmp_path, build_args=(("VERSION", "1"),))
    before = input_digest(image, ARM64)
    change = dict(change)
    platform = change.pop("platform", ARM64)
    assert (input_digest(replace(image, **change), platform) != before) is changed


def test_input_digest_follows_a_dockerfile_outside_the_context(tmp_path):
    image = make_image(tmp_path, dockerfile=tmp_path / "Dockerfile.demo")
    image.dockerfile.write_text("FROM scratch\n")
    before = input_digest(image, ARM64)
    image.dockerfile.write_text("FROM busybox\n")
    assert input_digest(image, ARM64) != before


def check(checker: inputs_unchanged, values: dict) -> tuple[bool, dict]:
    """Do what doit does: call the checker, then (on success) run the task's value savers."""
    task = SimpleNamespace(value_savers=[], values={})  # doit's Task: the actions' values
    result = checker(task, values)
    saved = {}
    for saver in task.value_savers:
        saved.update(saver())
    return result, saved


def test_inputs_unchanged_is_false_first_then_true_after_its_saver_ran(tmp_path):
    image = make_image(tmp_path)
    first, saved = check(inputs_unchanged(image, ARM64), {})
    assert (first, saved) == (False, {"input_digest": input_digest(image, ARM64)})
    assert check(inputs_unchanged(image, ARM64), saved)[0] is True  # the next run
    edit_one_byte(image.context)
    assert check(inputs_unchanged(image, ARM64), saved)[0] is False


def test_inputs_unchanged_with_a_socket_in_the_context(tmp_path):
    image = make_image(tmp_path)
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(image.context / "agent.sock"))
        checker = inputs_unchanged(image, ARM64)
        first, saved = check(checker, {})
        assert (first, check(checker, saved)[0]) == (False, True)


def test_inputs_unchanged_never_raises(tmp_path):
    image = make_image(tmp_path)
    image.dockerfile.unlink()
    checker = inputs_unchanged(image, ARMV7)
    assert check(checker, {"input_digest": "sha256:0"}) == (False, {})
    assert repr(checker) == "inputs_unchanged('demo', 'linux/arm/v7')"


# ---------------------------------------------------------------- tasks.doit.session.manifest_path


def test_relative_manifest_is_taken_from_the_invocation_folder(tmp_path, monkeypatch):
    invoked, dodo_dir = tmp_path / "user", tmp_path / "repo"
    dodo_dir.mkdir()
    monkeypatch.chdir(dodo_dir)  # doit changes into the dodo's folder before loading it
    found = manifest_path("conf/multiarch.yaml", str(invoked), str(dodo_dir))
    assert Path(found).resolve() == invoked / "conf" / "multiarch.yaml"


def test_absolute_manifest_is_kept(tmp_path):
    given = str(tmp_path / "m.yaml")
    assert manifest_path(given, "/somewhere", "/elsewhere") == given


@pytest.mark.parametrize(
    ("present", "expected"),
    [
        (("user", "repo"), "user"),
        (("repo",), "repo"),
        (("user",), "user"),
        ((), None),
    ],
)
def test_default_manifest_prefers_the_invocation_folder(tmp_path, monkeypatch, present, expected):
    for folder in ("user", "repo"):
        (tmp_path / folder).mkdir()
    for folder in present:
        (tmp_path / folder / "multiarch.yaml").write_text("version: 1\n")
    monkeypatch.chdir(tmp_path / "repo")
    found = Path(manifest_path(None, str(tmp_path / "user"), str(tmp_path / "repo")))
    assert found.name == "multiarch.yaml"
    if expected is None:  # nothing to find: a "cannot read" error names one of the two
        assert found.resolve().parent in {tmp_path / "user", tmp_path / "repo"}
    else:
        assert found.resolve() == tmp_path / expected / "multiarch.yaml"


def test_the_multiarch_command_looks_only_where_it_was_invoked(tmp_path):
    """Loaded by `multiarch` (no dodo file), the installed package's folder is no fallback."""
    (tmp_path / "package").mkdir()
    (tmp_path / "package" / "multiarch.yaml").write_text("version: 1\n")
    found = manifest_path(None, str(tmp_path / "user"), None)
    assert found == str(tmp_path / "user" / "multiarch.yaml")


def test_doit_list_imports_no_docker_sdk(project):
    """The stages import the docker SDK when they first talk to an engine, not when tasks
    are made: `doit list` loads none of it."""
    code = (
        "import sys\n"
        "from doit.cmd_base import DodoTaskLoader\n"
        "from doit.doit_cmd import DoitMain\n"
        f"DoitMain(DodoTaskLoader()).run(['list', '--all', '-f', {str(DODO)!r}])\n"
        "print(' '.join(m for m in sys.modules if m.split('.')[0] in ('docker', 'requests')))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True,
                          text=True, timeout=60, check=False)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines()[-1] == ""


def all_tasks(run: generate.Run) -> list[dict]:
    return [*generate.build_tasks(run), *generate.push_tasks(run),
            *generate.manifest_tasks(run), *generate.inspect_tasks(run),
            generate.doctor_task(run), generate.registries_task(run),
            generate.buildkitd_task(run), generate.status_task(run)]


def test_a_task_whose_record_says_it_is_done_voids_it_first(two_images, tmp_path):
    """Each task doit may skip on its record voids that record before its own actions run
    (state.void_record); the group tasks and those always run keep doit's default."""
    db = str(tmp_path / "doit.db")
    voiding = all_tasks(generate.Run.of(two_images, records=db))
    plain = all_tasks(generate.Run.of(two_images))
    def shapes(actions):  # what each action calls, and with how many arguments
        return [(action[0], len(action[1])) for action in actions or ()]

    voided = 0
    for task, as_before in zip(voiding, plain, strict=True):
        if task.get("actions") and task["uptodate"] not in ([False], [True]):
            assert task["actions"][0] == (state.void_record, [db]), task["doc"]
            assert shapes(task["actions"][1:]) == shapes(as_before["actions"]), task["doc"]
            voided += 1
        else:
            assert shapes(task.get("actions")) == shapes(as_before.get("actions")), task["doc"]
    assert voided == 2 + 2 * 3 * 2 + 2 + 1  # images, builds and pushes, lists, buildkitd


def test_a_failed_registries_check_stops_every_task_that_needs_it(two_images):
    """doit runs a task whose setup task failed anyway under `continue`: the task's first
    own action refuses when this run's check failed, and only this run's."""
    run = generate.Run.of(two_images)
    guarded = [task for task in all_tasks(run) if task.get("setup") == ["registries"]]
    assert len(guarded) == 2 * 3 * 2  # every build and push
    check, args = guarded[0]["actions"][0]
    state_dir = two_images.state_dir
    assert check(*args) is None  # no check failed yet
    state_dir.mkdir(exist_ok=True)
    (state_dir / generate.PREFLIGHT_FAILED).write_text("another run")
    assert check(*args) is None
    (state_dir / generate.PREFLIGHT_FAILED).write_text(run.id)
    assert "registries check failed" in str(check(*args))


@pytest.mark.parametrize("verify", [True, False])
def test_registry_checks_are_made_only_when_verifying(two_images, verify):
    run = generate.Run.of(two_images, verify=verify)
    tasks = [*generate.build_tasks(run), *generate.push_tasks(run), *generate.manifest_tasks(run)]
    checks = [check for task in tasks for check in task["uptodate"]
              if isinstance(check, still_in_registry)]
    pushes = sum(len(image.platforms) for image in two_images.images)
    assert len(checks) == (pushes + 2 * len(two_images.images) if verify else 0)
    assert all(check.probe is run.probe for check in checks)
