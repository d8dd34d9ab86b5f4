"""Parallel runs: `-n 4 -P thread` and `-P process` publish what `-n 1` does, the state database
survives them, and two runs started at once on one workspace serialise."""

import json
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import yaml

from tests.conftest import REGISTRY, ROOT, Workspace, docker, raw_manifest

PLATFORMS = ["linux/amd64", "linux/arm64"]
# 20 images: 2 bases FROM busybox, 5 built FROM them (one of those a base again), 13 alone.
FROMS = {"base0": None, "base1": None, "mid": "base0", "top": "mid", "app0": "base0",
         "app1": "base1", "app2": "base1", **{f"solo{n:02}": None for n in range(13)}}
INDEX_TYPES = ("application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json")


def contexts(root: Path, names: dict) -> Path:
    """One context per image, shared by every namespace, so all of them build the same files
    (same bytes, same mtimes): BuildKit then makes the same layers whichever run builds."""
    token = uuid.uuid4().hex  # unique content per test run: the cache cannot mask a failure
    for name, base in names.items():
        folder = root / name
        folder.mkdir(parents=True)
        origin = "busybox:1.35" if base is None else f"${{NS}}/{base}:v1"
        (folder / "Dockerfile").write_text(f"ARG NS\nFROM {origin}\nCOPY {name}.txt /\n")
        (folder / f"{name}.txt").write_text(f"{name} {token}\n")
    return root


def workspace_for(path: Path, shared: Path, names: dict) -> Workspace:
    """A workspace whose manifest builds ``shared``'s contexts into its own namespace."""
    path.mkdir()
    space = Workspace(path)
    images = {}
    for name, base in names.items():
        images[name] = {"context": str(shared / name), "tags": ["v1"],
                        "repository": f"{space.namespace}/{name}"}
        if base is not None:
            images[name]["build_args"] = {"NS": f"{REGISTRY}/{space.namespace}"}
    document = {"version": 1, "registry": REGISTRY, "platforms": PLATFORMS, "images": images}
    (path / "multiarch.yaml").write_text(yaml.safe_dump(document))
    return space


# doit as `python -m doit`, with workers started the way Python 3.14 (forkserver) and macOS
# (spawn) start them: every task then reaches its worker pickled.
FORKSERVER = ("import multiprocessing, sys; multiprocessing.set_start_method('forkserver'); "
              "from doit.doit_cmd import DoitMain; sys.exit(DoitMain().run(sys.argv[1:]))")


def doit_argv(space: Workspace, *args: str, start: str = "fork") -> list[str]:
    python = ["-m", "doit"] if start == "fork" else ["-c", FORKSERVER]
    return [sys.executable, *python, "run", "-f", str(ROOT / "dodo.py"), *args,
            f"manifest={space.path / 'multiarch.yaml'}"]


def content(space: Workspace, names) -> dict:
    """Per image: the platforms its list names, and per platform the config and layers,
    all read by skopeo."""
    found = {}
    for name in names:
        repo = f"{REGISTRY}/{space.namespace}/{name}"
        listed = raw_manifest(f"{repo}:v1")
        assert listed and listed["mediaType"] in INDEX_TYPES, f"{repo}:v1: {listed}"
        per_platform = {}
        for entry in listed["manifests"]:
            fields = entry["platform"]
            platform = f"{fields['os']}/{fields['architecture']}"
            image = raw_manifest(f"{repo}@{entry['digest']}")
            assert image and "layers" in image, f"{repo}@{entry['digest']}: {image}"
            per_platform[platform] = {"config": image["config"]["digest"],
                                      "layers": [layer["digest"] for layer in image["layers"]]}
        assert sorted(per_platform) == sorted(PLATFORMS), f"{repo}:v1 lists {sorted(per_platform)}"
        found[name] = per_platform
    return found


def tags(space: Workspace, name: str) -> set[str]:
    result = subprocess.run(["skopeo", "list-tags", "--tls-verify=false",
                             f"docker://{REGISTRY}/{space.namespace}/{name}"],
                            capture_output=True, text=True, check=True)
    return {tag for tag in yaml.safe_load(result.stdout)["Tags"] if not tag.startswith("cache-")}


def task_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith((".  ", "-- "))]


def assert_no_op(space: Workspace, names, *options: str) -> None:
    """A second run finds every task up to date: the state database kept what the first wrote."""
    again = space.doit(*options, "build")
    lines = task_lines(again.stdout)
    assert lines and all(line.startswith("-- ") for line in lines), again.stdout[-3000:]
    database = sqlite3.connect(space.path / ".multiarch" / "doit.db")
    try:
        assert database.execute("pragma integrity_check").fetchone() == ("ok",)
        assert database.execute("select count(*) from doit").fetchone()[0] >= 6 * len(names)
    finally:
        database.close()


def test_thread_and_process_runs_publish_what_a_serial_run_does(engine, tmp_path):
    shared = contexts(tmp_path / "ctx", FROMS)
    runs = {"serial": ("-n", "1"), "thread": ("-n", "4", "-P", "thread"),
            "process": ("-n", "4", "-P", "process")}
    published, seconds = {}, {}
    for label, options in runs.items():
        space = workspace_for(tmp_path / label, shared, FROMS)
        start = time.monotonic()
        first = space.doit(*options, "build")
        seconds[label] = time.monotonic() - start
        assert sum(line.startswith(".  build:") for line in task_lines(first.stdout)) == \
            len(FROMS) * (len(PLATFORMS) + 1)
        # What the steps returned in threads or worker processes reached the parent's report.
        report = json.loads((space.path / ".multiarch" / "report.json").read_text())
        assert report["summary"]["platforms"] == {"pushed": len(FROMS) * len(PLATFORMS)}
        assert_no_op(space, FROMS, *options)
        assert all(tags(space, name) == {"v1", "v1-amd64", "v1-arm64"} for name in FROMS)
        published[label] = content(space, FROMS)
    print(f"first builds, 20 images x 2 platforms: {seconds}")
    # Same files, same bases: BuildKit's cache gives the same layers and configs in every run.
    assert published["thread"] == published["serial"]
    assert published["process"] == published["serial"]


def test_two_runs_started_at_once_serialise_and_both_end_correct(engine, tmp_path):
    names = {"base0": None, "app0": "base0", "solo00": None}
    shared = contexts(tmp_path / "ctx", names)
    space = workspace_for(tmp_path / "ws", shared, names)
    runs = [subprocess.Popen(doit_argv(space, *options, "build"), cwd=space.path, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for options in (("-n", "4"), ("-n", "4", "-P", "process"))]
    outputs = [run.communicate(timeout=600) for run in runs]

    assert [run.returncode for run in runs] == [0, 0], outputs
    waited = [index for index, (_, err) in enumerate(outputs)
              if f"multiarch: waiting for another doit run on {space.path} (pid " in err]
    assert len(waited) == 1, [err for _, err in outputs]
    first, second = outputs[1 - waited[0]][0], outputs[waited[0]][0]
    assert sum(line.startswith(".  build:") for line in task_lines(first)) == 3 * len(names)
    # The run that waited decided after the first had finished: nothing ran twice.
    assert all(line.startswith("-- ") for line in task_lines(second)), second
    content(space, names)
    said = docker("run", "--rm", "--pull", "always", "--platform", "linux/arm64",
                  f"{REGISTRY}/{space.namespace}/app0:v1", "cat", "/base0.txt", "/app0.txt")
    assert said == "".join((shared / n / f"{n}.txt").read_text() for n in ("base0", "app0"))
    assert_no_op(space, names)


def test_process_workers_started_by_forkserver_get_picklable_tasks(engine, tmp_path):
    names = {"base0": None, "app0": "base0", "solo00": None}
    space = workspace_for(tmp_path / "ws", contexts(tmp_path / "ctx", names), names)
    argv = doit_argv(space, "-n", "4", "-P", "process", "build", start="forkserver")
    for run in range(2):
        result = subprocess.run(argv, cwd=space.path, capture_output=True, text=True,
                                timeout=600)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        lines = task_lines(result.stdout)
        ran = [line for line in lines if line.startswith(".  build:")]
        # The workers' results reached the parent's state: the second run is a no-op.
        assert len(ran) == (3 * len(names) if run == 0 else 0), result.stdout[-3000:]
    content(space, names)
