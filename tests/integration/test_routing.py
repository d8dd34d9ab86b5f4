"""`builders:` routes each platform to its own engine (issue #7), on three real engines here:
the default dockerd 26, the classic dockerd 20.10 and the "node" dockerd 20.10 that
scripts/engine starts for these tests. Only the node is ever stopped (issue #6, promise 4)."""

import os
import subprocess
import sys
import threading
import time

import pytest
import yaml

from tests.conftest import (
    CLASSIC,
    ROOT,
    builders_of,
    docker,
    engine_env,
    raw_manifest,
    require_classic,
)
from tests.support import nodes

NODE = nodes.NODE
NOWHERE = "unix:///run/multiarch-nowhere/docker.sock"  # no engine ever listens here
ENGINE_OF = {"amd64": None, "arm64": NODE, "armv7": CLASSIC}
UNAME = {"linux/amd64": "x86_64", "linux/arm64": "aarch64", "linux/arm/v7": "armv7l"}

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module", autouse=True)
def engines(engine):
    require_classic()
    nodes.require_node()
    yield
    if not nodes.answers():  # a failed kill test must not leave the node down for others
        nodes.start()


def routed_manifest(ws, images: dict, platforms: list[str], builders: dict) -> None:
    """ws.manifest plus a `builders:` section."""
    path = ws.manifest(images, platforms)
    document = yaml.safe_load(path.read_text())
    document["builders"] = builders
    path.write_text(yaml.safe_dump(document))


def timed_image(ws, name: str, seconds: int) -> None:
    """An image whose RUN step records when it started and ended (unique per test)."""
    ws.context(name, (
        "FROM busybox:1.35\n"
        f"RUN echo {ws.namespace}-{name} > /id && date +%s > /started && sleep {seconds}"
        " && date +%s > /finished\n"
        'CMD ["sh", "-c", "uname -m; cat /started /finished"]\n'))


def tags_on(host: str | None, repository: str) -> set[str]:
    """The per-platform tags of ``repository`` that the engine at ``host`` holds."""
    out = docker("images", "--format", "{{.Tag}}", f"localhost:5000/{repository}",
                 docker_host=host)
    return {tag for tag in out.split() if not tag.startswith("cache-")}


def listed_platforms(ref: str) -> set[str]:
    index = raw_manifest(ref)
    assert index is not None, f"no list at {ref}"
    return {"/".join(filter(None, (m["platform"]["os"], m["platform"]["architecture"],
                                   m["platform"].get("variant"))))
            for m in index["manifests"] if m["platform"]["os"] != "unknown"}


def run_platform(ref: str, platform: str) -> list[str]:
    """`docker run --platform` on the default engine, from the registry's list."""
    return docker("run", "--rm", "--pull", "always", "--platform", platform, ref).split()


def assert_app_listed(ws, platforms, builders: dict[str, str]) -> None:
    """The report names the engine that built each platform of app, its list holds every
    platform, and its arm64 image runs as aarch64."""
    assert builders_of(ws, "app") == builders
    ref = f"localhost:5000/{ws.namespace}/app:latest"
    assert listed_platforms(ref) == set(platforms)
    assert run_platform(ref, "linux/arm64") == ["aarch64"]


def cleanup(ws, names) -> None:
    """Remove what this test put in the node and classic engines (its own namespace only).

    The default engine is left to `.ci/run`'s prune: on the containerd store an `image rm`
    scans every image and took 40 s here with a few thousand images present.
    """
    for host in (NODE, CLASSIC):
        for name in names:
            repository = f"localhost:5000/{ws.namespace}/{name}"
            out = subprocess.run(["docker", "images", "--format", "{{.Repository}}:{{.Tag}}",
                                  repository], capture_output=True, text=True,
                                 env=engine_env(host)).stdout.split()
            if out:
                subprocess.run(["docker", "image", "rm", "-f", *out], capture_output=True,
                               env=engine_env(host))


def test_each_platform_builds_on_its_engine_in_parallel_and_the_list_runs_everywhere(workspace):
    ws = workspace
    platforms = ["linux/amd64", "linux/arm64", "linux/arm/v7"]
    timed_image(ws, "app", 6)
    timed_image(ws, "tool", 6)
    routed_manifest(ws, {"app": {"context": "app"}, "tool": {"context": "tool"}}, platforms,
                    {"linux/arm64": {"docker_host": NODE, "emulate": False},
                     "linux/arm/v7": {"docker_host": CLASSIC}})
    try:
        result = ws.doit("-n", "3", "build")
        assert f"DOCKER_HOST={NODE} docker build" in result.stdout
        assert f"DOCKER_HOST={CLASSIC} docker build" in result.stdout

        windows = {}
        for name in ("app", "tool"):
            repository = f"{ws.namespace}/{name}"
            for suffix, host in ENGINE_OF.items():  # each image only on its own engine
                # The default engine bakes: its images are there under content tags only.
                wanted = set() if host is None else {f"latest-{suffix}"}
                assert tags_on(host, repository) == wanted, (suffix, host)
            assert builders_of(ws, name) == {"linux/amd64": "default", "linux/arm64": NODE,
                                             "linux/arm/v7": CLASSIC}
            ref = f"localhost:5000/{repository}:latest"
            assert listed_platforms(ref) == set(platforms)
            for platform in platforms:
                machine, started, finished = run_platform(ref, platform)
                assert machine == UNAME[platform]
                windows[(name, platform)] = (int(started), int(finished))

        # Builds on different engines ran at the same time: some two RUN steps overlap.
        overlapping = [
            (a, b) for a in windows for b in windows
            if a[1] < b[1] and windows[a][0] < windows[b][1] and windows[b][0] < windows[a][1]
        ]
        assert overlapping, windows

        # The engine is not an input: routing arm64 elsewhere rebuilds nothing.
        routed_manifest(ws, {"app": {"context": "app"}, "tool": {"context": "tool"}}, platforms,
                        {"linux/arm/v7": {"docker_host": CLASSIC}})
        again = ws.doit("-n", "3", "build")
        assert "docker build" not in again.stdout, again.stdout
    finally:
        cleanup(ws, ["app", "tool"])


def start_build(ws, *args: str):
    """`doit build` in the background; its output lines are collected as they come."""
    argv = [sys.executable, "-m", "doit", "run", "-f", str(ROOT / "dodo.py"), *args,
            f"manifest={ws.path / 'multiarch.yaml'}"]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, cwd=ws.path, env=dict(os.environ))
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
    reader.start()
    return process, lines, reader


@pytest.mark.parametrize("how", ["stop", "restart"])
def test_node_going_down_mid_build_fails_clearly_and_the_rerun_converges(workspace, how):
    ws = workspace
    platforms = ["linux/amd64", "linux/arm64"]
    timed_image(ws, "app", 10)
    routed_manifest(ws, {"app": {"context": "app"}}, platforms,
                    {"linux/arm64": {"docker_host": NODE}})
    ref = f"localhost:5000/{ws.namespace}/app:latest"
    try:
        process, lines, reader = start_build(ws, "-n", "2", "build")
        nodes.wait_for_emulated_process(f"{ws.namespace}-app", process, lines)  # arm64's RUN
        nodes.stop()
        if how == "restart":
            nodes.start()
        returncode = process.wait(timeout=180)
        reader.join(timeout=10)
        output = "".join(lines)
        assert returncode != 0, output
        failure = [line for line in output.splitlines()
                   if line.startswith(f"linux/arm64: builder {NODE} ")]
        assert failure, output
        assert "rerun" in failure[0], output
        assert raw_manifest(ref) is None, output  # nothing half-published

        if how == "stop":
            nodes.start()
        rerun = ws.doit("-n", "2", "build")
        assert f"[app linux/arm64] $ DOCKER_HOST={NODE} docker build" in rerun.stdout, rerun.stdout
        assert listed_platforms(ref) == set(platforms)
        for platform in platforms:
            assert run_platform(ref, platform)[0] == UNAME[platform]
    finally:
        if not nodes.answers():
            nodes.start()
        nodes.kill_emulated_processes(f"{ws.namespace}-app")
        cleanup(ws, ["app"])


def test_emulate_false_fails_fast_naming_the_unreachable_node(workspace):
    ws = workspace
    ws.context("app", f"FROM busybox:1.35\nRUN echo {ws.namespace}\n")
    routed_manifest(ws, {"app": {"context": "app"}}, ["linux/amd64", "linux/arm64"],
                    {"linux/arm64": {"docker_host": NOWHERE, "emulate": False}})
    started = time.monotonic()
    result = ws.doit("build:app:linux/arm64", check=False)
    elapsed = time.monotonic() - started
    assert result.returncode != 0
    assert elapsed < 10, elapsed
    assert (f"linux/arm64: builder {NOWHERE} is unreachable (No such file or directory); "
            "emulate: false forbids a local QEMU build") in result.stdout + result.stderr
    assert "docker build" not in result.stdout
    assert raw_manifest(f"localhost:5000/{ws.namespace}/app:latest") is None


def test_by_default_an_unreachable_node_builds_locally_under_qemu_and_says_so(workspace):
    ws = workspace
    ws.context("app", f"FROM busybox:1.35\nRUN echo {ws.namespace}\nCMD [\"uname\", \"-m\"]\n")
    platforms = ["linux/amd64", "linux/arm64"]
    routed_manifest(ws, {"app": {"context": "app"}}, platforms,
                    {"linux/arm64": {"docker_host": NOWHERE}})
    try:
        result = ws.doit("build")
        assert (f"[app linux/arm64] builder {NOWHERE} unreachable (No such file or directory); "
                "building locally under QEMU") in result.stdout
        # amd64 is baked (content tags only), arm64 built here by `docker build`, its route down.
        assert tags_on(None, f"{ws.namespace}/app") == {"latest-arm64"}
        assert_app_listed(ws, platforms, {"linux/amd64": "default", "linux/arm64": "default"})
    finally:
        cleanup(ws, ["app"])
