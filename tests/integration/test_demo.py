"""The first slice end to end: multiarch.yaml → doit build → a manifest list that runs."""

import shutil

import pytest

from tests.conftest import ROOT, docker, raw_manifest

UNAME = {"linux/amd64": "x86_64", "linux/arm64": "aarch64", "linux/arm/v7": "armv7l",
         "linux/ppc64le": "ppc64le", "linux/s390x": "s390x"}
SUFFIX = {"linux/amd64": "amd64", "linux/arm64": "arm64", "linux/arm/v7": "armv7",
          "linux/ppc64le": "ppc64le", "linux/s390x": "s390x"}


def platform_of(entry: dict) -> str:
    fields = entry["platform"]
    return "/".join(filter(None, (fields["os"], fields["architecture"], fields.get("variant"))))


def list_children(ref: str) -> dict[str, str]:
    """platform → child digest of the manifest list at ``ref``, as the registry has it."""
    index = raw_manifest(ref)
    assert index is not None, f"{ref} is not in the registry"
    assert index["mediaType"] in ("application/vnd.oci.image.index.v1+json",
                                  "application/vnd.docker.distribution.manifest.list.v2+json")
    children = {platform_of(entry): entry["digest"] for entry in index["manifests"]}
    assert len(children) == len(index["manifests"]), "a platform is listed twice"
    return children


def pushed_image(ref: str, platform: str) -> str:
    """The digest of ``platform``'s image behind a per-platform tag, skipping attestations."""
    pushed = raw_manifest(ref)
    assert pushed is not None, f"{ref} was not pushed"
    if "manifests" not in pushed:
        return docker("buildx", "imagetools", "inspect", ref, "--format",
                      "{{json .Manifest.Digest}}").strip().strip('"')
    images = [e for e in pushed["manifests"] if platform_of(e) == platform]
    assert len(images) == 1, pushed
    return images[0]["digest"]


def demo_workspace(workspace, platforms: list[str]) -> str:
    shutil.copytree(ROOT / "examples" / "demo", workspace.path / "demo")
    workspace.manifest({"demo": {"context": "demo", "tags": ["v1"]}}, platforms)
    return f"localhost:5000/{workspace.namespace}/demo"


def assert_list_matches_pushes(repository: str, platforms: list[str]) -> dict[str, str]:
    children = list_children(f"{repository}:v1")
    assert set(children) == set(platforms)
    for platform in platforms:
        pushed = pushed_image(f"{repository}:v1-{SUFFIX[platform]}", platform)
        assert children[platform] == pushed, platform
    return children


def test_build_demo_pushes_a_list_that_runs_on_each_platform(workspace):
    platforms = ["linux/amd64", "linux/arm64"]
    repository = demo_workspace(workspace, platforms)

    workspace.doit("build:demo")

    assert_list_matches_pushes(repository, platforms)
    inspected = docker("manifest", "inspect", "--insecure", f"{repository}:v1")
    assert '"architecture": "arm64"' in inspected and '"architecture": "amd64"' in inspected
    for platform in platforms:
        said = docker("run", "--rm", "--pull", "always", "--platform", platform,
                      f"{repository}:v1")
        assert said.strip() == f"Hello from {UNAME[platform]}"


def test_second_run_does_nothing(workspace):
    demo_workspace(workspace, ["linux/amd64", "linux/arm64"])
    workspace.doit("build:demo")

    again = workspace.doit("build:demo")

    ran = [line for line in again.stdout.splitlines() if line.startswith(".  ")
            and not line.startswith(".  registries")]
    assert ran == [], again.stdout
    assert "docker build" not in again.stdout


def test_one_platform_task_builds_only_that_platform(workspace):
    repository = demo_workspace(workspace, ["linux/amd64", "linux/arm64"])

    result = workspace.doit("build:demo:linux/arm64")

    ran = [line.split()[1] for line in result.stdout.splitlines() if line.startswith(".  ")
            and not line.startswith(".  registries")]
    assert ran == ["build:demo:linux/arm64"]
    assert raw_manifest(f"{repository}:v1-arm64") is None  # built, not pushed
    docker("image", "inspect", f"{repository}:v1-arm64")


def test_dockerfile_change_replaces_every_child_of_the_list(workspace):
    platforms = ["linux/amd64", "linux/arm64"]
    repository = demo_workspace(workspace, platforms)
    workspace.doit("build:demo")
    before = list_children(f"{repository}:v1")

    dockerfile = workspace.path / "demo" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + 'LABEL org.example.revision="2"\n')
    workspace.doit("build:demo")

    after = assert_list_matches_pushes(repository, platforms)
    for platform in platforms:
        assert after[platform] != before[platform], f"{platform} still lists the old image"


def test_four_platforms(workspace):
    platforms = ["linux/amd64", "linux/arm64", "linux/arm/v7", "linux/ppc64le"]
    repository = demo_workspace(workspace, platforms)

    workspace.doit("-n", "4", "build")

    assert_list_matches_pushes(repository, platforms)
    for platform in platforms:
        said = docker("run", "--rm", "--pull", "always", "--platform", platform,
                      f"{repository}:v1")
        assert said.strip() == f"Hello from {UNAME[platform]}"


def test_a_failing_platform_publishes_no_list(workspace):
    workspace.context("fails", 'FROM busybox:1.35\nRUN [ "$(uname -m)" != aarch64 ]\n')
    workspace.manifest({"fails": {"context": "fails", "tags": ["v1"]}},
                       ["linux/amd64", "linux/arm64"])
    repository = f"localhost:5000/{workspace.namespace}/fails"

    result = workspace.doit("build:fails", check=False)

    assert result.returncode != 0
    assert "build fails for linux/arm64 failed" in result.stdout + result.stderr
    assert raw_manifest(f"{repository}:v1") is None
    assert raw_manifest(f"{repository}:v1-arm64") is None


@pytest.mark.parametrize("platform", ["linux/amd64", "linux/arm64"])
def test_pull_fetches_each_platforms_own_base(workspace, platform):
    """`--pull` per platform: the base's architecture is the platform's, not the host's."""
    workspace.context("base", "FROM busybox:1.35\nCMD [\"uname\", \"-m\"]\n")
    workspace.manifest({"base": {"context": "base"}}, [platform])
    repository = f"localhost:5000/{workspace.namespace}/base"

    workspace.doit("build:base")

    said = docker("run", "--rm", "--pull", "always", "--platform", platform,
                  f"{repository}:latest")
    assert said.strip() == UNAME[platform]
