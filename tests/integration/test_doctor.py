"""`doit doctor` on this machine: both engines, the registry and the QEMU handlers it has."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

CLASSIC = "unix:///run/multiarch-classic/docker.sock"  # scripts/engine's CLASSIC_HOST
BINFMT = Path("/proc/sys/fs/binfmt_misc")
QEMU_PLATFORMS = ("linux/arm64", "linux/arm/v7", "linux/ppc64le", "linux/s390x")

pytestmark = pytest.mark.engine

# dodo.py has no task_doctor yet: a dodo of the test's own adds it to the project's tasks.
DODO = f"""\
import sys
sys.path.insert(0, {str(ROOT)!r})
from dodo import *  # noqa: F403
from multiarch.tasks.doit.generate import doctor_task


def task_doctor():
    return doctor_task(RUN)  # noqa: F405
"""


def doctor(workspace, docker_host: str | None = None) -> subprocess.CompletedProcess:
    dodo = workspace.path / "doctor_dodo.py"  # not dodo.py: it imports the project's dodo
    dodo.write_text(DODO)
    env = dict(os.environ)
    if docker_host:
        env["DOCKER_HOST"] = docker_host
    argv = [sys.executable, "-m", "doit", "run", "-f", str(dodo),
            f"manifest={workspace.path / 'multiarch.yaml'}", "doctor"]
    return subprocess.run(argv, capture_output=True, text=True, cwd=workspace.path, env=env,
                          timeout=120)


def lines(result: subprocess.CompletedProcess, prefix: str) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.startswith(prefix)]


def one_image(workspace, platforms, **method):
    workspace.context("app", "FROM busybox:1.35\n")
    workspace.manifest({"app": {"context": "app", **method}}, platforms)


def unregistered_arch() -> str:
    """An architecture QEMU could emulate that this machine has no binfmt handler for."""
    for arch, handler in (("mips64le", "qemu-mips64el"), ("loong64", "qemu-loongarch64"),
                          ("mipsle", "qemu-mipsel")):
        if not (BINFMT / handler).exists():
            return arch
    pytest.skip("every candidate architecture has a binfmt handler here")


def test_this_machine_builds_five_platforms(workspace):
    one_image(workspace, ["linux/amd64", *QEMU_PLATFORMS])
    result = doctor(workspace)
    assert result.returncode == 0, result.stdout + result.stderr
    engine = lines(result, "ok    engine: Docker 26.")
    assert engine and "(containerd image store)" in engine[0], result.stdout
    assert lines(result, "ok    builder default: driver docker, can build several platforms")
    assert lines(result, "ok    platform linux/amd64: native")
    for platform in QEMU_PLATFORMS:
        assert lines(result, f"ok    platform {platform}: via QEMU"), result.stdout
    assert lines(result, "ok    registry localhost:5000: answers over HTTP; the engine treats "
                         "it as insecure (loopback)"), result.stdout
    assert not lines(result, "error")


def test_a_platform_without_a_handler_fails_before_any_build(workspace):
    arch = unregistered_arch()
    one_image(workspace, ["linux/amd64", f"linux/{arch}"])
    result = doctor(workspace)
    assert result.returncode != 0, result.stdout
    found = lines(result, f"error platform linux/{arch}: no binfmt handler")
    assert found, result.stdout
    assert f"docker run --privileged --rm tonistiigi/binfmt --install {arch}" in found[0]
    assert "qemu-user-static" in found[0]
    assert "doctor: 1 problem(s)" in result.stdout + result.stderr


def test_classic_engine_cannot_build_several_platforms_with_buildx(workspace):
    one_image(workspace, ["linux/amd64", "linux/arm64"], strategy="buildx")
    result = doctor(workspace, CLASSIC)
    if lines(result, "error engine"):
        pytest.skip(f"no classic engine at {CLASSIC}: run `scripts/engine up` first")
    assert result.returncode != 0, result.stdout
    assert lines(result, "ok    engine: Docker 20.10."), result.stdout
    assert "classic image store" in lines(result, "ok    engine")[0]
    assert lines(result, "ok    builder default: driver docker, cannot build several")
    found = lines(result, "error image app: strategy buildx")
    assert found and "containerd-snapshotter" in found[0], result.stdout


def test_classic_engine_with_fallback_manifest_passes(workspace):
    one_image(workspace, ["linux/amd64", "linux/arm64"], strategy="buildx", fallback="manifest")
    result = doctor(workspace, CLASSIC)
    if lines(result, "error engine"):
        pytest.skip(f"no classic engine at {CLASSIC}: run `scripts/engine up` first")
    assert result.returncode == 0, result.stdout + result.stderr
    assert lines(result, "warn  image app: strategy buildx"), result.stdout
