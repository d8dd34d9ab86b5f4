"""Every method of the seed, on both engines: per-platform builds with --platform, the ARCH
build arg, hard-coded `FROM --platform` Dockerfiles, and the buildx strategy with its fallback.

The seed's own Dockerfiles are the fixtures (busybox:1.35 in place of alpine:3.17); each
platform is run under `docker run --platform` and asked its `uname -m`.
"""

import shutil

import pytest

from tests.conftest import CLASSIC, ROOT, docker, raw_manifest, require_classic

SEED = ROOT / "tests" / "fixtures" / "seed"
UNAME = {"linux/amd64": "x86_64", "linux/arm64": "aarch64", "linux/arm/v7": "armv7l"}


def seed_workspace(workspace, image: dict, platforms: list[str]) -> str:
    shutil.copytree(SEED, workspace.path / "seed")
    workspace.manifest({"demo": {"context": "seed", "tags": ["v1"],
                                 "repository": f"{workspace.namespace}/demo", **image}},
                       platforms)
    return f"localhost:5000/{workspace.namespace}/demo:v1"


def listed_platforms(ref: str) -> set[str]:
    index = raw_manifest(ref)
    assert index is not None and "manifests" in index, f"{ref} is not a list: {index}"
    platforms = set()
    for entry in index["manifests"]:
        fields = entry["platform"]
        if fields["os"] == "unknown":
            continue
        platforms.add("/".join(filter(None, (fields["os"], fields["architecture"],
                                             fields.get("variant")))))
    return platforms


def assert_runs_everywhere(ref: str, platforms: list[str], docker_host=None) -> None:
    assert listed_platforms(ref) == set(platforms)
    for platform in platforms:
        said = docker("run", "--rm", "--pull", "always", "--platform", platform, ref,
                      "uname", "-m", docker_host=docker_host)
        assert said.strip() == UNAME[platform], platform
        assert docker("run", "--rm", "--platform", platform, ref,
                      docker_host=docker_host) == "Hello\n"


def test_manifest_strategy_with_platform(workspace, engine_host):
    platforms = ["linux/amd64", "linux/arm64", "linux/arm/v7"]
    ref = seed_workspace(workspace, {}, platforms)

    workspace.doit("build", docker_host=engine_host)

    assert_runs_everywhere(ref, platforms, engine_host)


def test_arch_build_arg_uses_the_per_architecture_namespaces(workspace, engine_host):
    platforms = ["linux/amd64", "linux/arm64", "linux/arm/v7"]
    ref = seed_workspace(workspace, {"dockerfile": "Dockerfile-arg", "arch": "build-arg"},
                         platforms)

    result = workspace.doit("build", docker_host=engine_host)

    assert "--build-arg ARCH=arm64v8" in result.stdout
    assert "--build-arg ARCH=arm32v7" in result.stdout
    assert_runs_everywhere(ref, platforms, engine_host)


def test_per_platform_dockerfiles_with_a_hard_coded_from_platform(workspace, engine_host):
    platforms = ["linux/amd64", "linux/arm64"]
    ref = seed_workspace(workspace, {"dockerfiles": {"linux/amd64": "Dockerfile-amd64",
                                                     "linux/arm64": "Dockerfile-arm64"}},
                         platforms)

    result = workspace.doit("build", docker_host=engine_host)

    assert "Dockerfile-arm64" in result.stdout
    assert_runs_everywhere(ref, platforms, engine_host)


def test_buildx_strategy_on_the_containerd_store(workspace, engine):
    platforms = ["linux/amd64", "linux/arm64", "linux/arm/v7"]
    ref = seed_workspace(workspace, {"strategy": "buildx"}, platforms)

    result = workspace.doit("build")

    assert "$ docker buildx build" in result.stdout and "--push" in result.stdout
    assert "push:demo" not in result.stdout
    assert_runs_everywhere(ref, platforms)
    assert [line for line in workspace.doit("build").stdout.splitlines()
            if line.startswith(".  ")
            and not line.startswith(".  registries")] == []


def test_buildx_strategy_on_the_docker_driver_says_what_to_do(workspace):
    """Docker 20.10's docker driver (the classic store) refuses several platforms at once."""
    require_classic()
    seed_workspace(workspace, {"strategy": "buildx"}, ["linux/amd64", "linux/arm64"])

    result = workspace.doit("build", docker_host=CLASSIC, check=False)

    assert result.returncode != 0
    said = result.stdout + result.stderr
    assert "demo: the builder default (docker driver) cannot build several platforms" in said
    assert '"containerd-snapshotter": true' in said and "fallback: manifest" in said
    assert "Traceback" not in said


def test_buildx_strategy_falls_back_to_manifest_when_told(workspace, engine_host):
    platforms = ["linux/amd64", "linux/arm64"]
    ref = seed_workspace(workspace, {"strategy": "buildx", "fallback": "manifest"}, platforms)

    result = workspace.doit("build", docker_host=engine_host)

    if engine_host is not None:
        assert "falling back to the manifest strategy" in result.stdout
    assert_runs_everywhere(ref, platforms, engine_host)


@pytest.mark.parametrize("attestations", ["false", "provenance"])
def test_lists_are_right_with_and_without_attestations(workspace, attestations):
    platforms = ["linux/amd64", "linux/arm64"]
    ref = seed_workspace(workspace, {"attestations": attestations}, platforms)

    workspace.doit("build")

    child = raw_manifest(ref.replace(":v1", ":v1-arm64"))
    assert ("manifests" in child) is (attestations == "provenance")
    assert_runs_everywhere(ref, platforms)
