"""The registry is part of "up to date": missing tags are pushed again, content tags reused."""

import shutil
import subprocess

from tests.conftest import CLASSIC, docker, raw_manifest, require_classic

PLATFORMS = ["linux/amd64", "linux/arm64"]


def ran(result) -> list[str]:
    return sorted(line.split()[1] for line in result.stdout.splitlines() if line.startswith(".  ")
                  and not line.startswith(".  registries"))


def web(workspace, cache: str | None = None) -> str:
    context = workspace.context("web", "FROM busybox:1.35\nCOPY index.html /srv/\n")
    (context / "index.html").write_text("<h1>web</h1>\n")
    path = workspace.manifest({"web": {"context": "web", "tags": ["v1"]}}, PLATFORMS)
    if cache:
        path.write_text(path.read_text() + f"cache: {cache}\n")
    return f"localhost:5000/{workspace.namespace}/web"


def overwrite(ref: str) -> None:
    """Someone else pushes to ``ref``: busybox's amd64 image lands on the tag."""
    subprocess.run(["skopeo", "copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false",
                    "--override-arch", "amd64", "docker://127.0.0.1:5000/library/busybox:1.35",
                    f"docker://{ref}"], check=True)


def digest_of(ref: str) -> str:
    return docker("buildx", "imagetools", "inspect", ref, "--format",
                  "{{json .Manifest.Digest}}").strip().strip('"')


def test_an_overwritten_platform_tag_is_pushed_again_without_a_build(workspace):
    repository = web(workspace)
    workspace.doit("build")
    before = digest_of(f"{repository}:v1-arm64")

    overwrite(f"{repository}:v1-arm64")
    result = workspace.doit("build")

    assert ran(result) == ["push:web:linux/arm64"]
    assert digest_of(f"{repository}:v1-arm64") == before


def test_an_overwritten_list_is_published_again(workspace):
    repository = web(workspace)
    workspace.doit("build")
    before = raw_manifest(f"{repository}:v1")

    overwrite(f"{repository}:v1")
    result = workspace.doit("build")

    assert ran(result) == ["build:web", "manifest:web"]  # build:web inspects the list again
    assert raw_manifest(f"{repository}:v1") == before


def test_verify_0_trusts_the_local_state(workspace):
    repository = web(workspace)
    workspace.doit("build")
    overwrite(f"{repository}:v1")

    assert ran(workspace.doit("build", "verify=0")) == []


def test_a_fresh_clone_reuses_what_the_registry_has(workspace):
    repository = web(workspace)
    workspace.doit("build")
    listed = raw_manifest(f"{repository}:v1")

    shutil.rmtree(workspace.path / ".multiarch")
    result = workspace.doit("build")

    assert "$ docker build " not in result.stdout
    assert result.stdout.count("reusing ") == len(PLATFORMS)
    assert raw_manifest(f"{repository}:v1") == listed
    assert ran(workspace.doit("build")) == []


def delete(ref: str) -> None:
    """The registry loses ``ref``'s manifest, and so every tag on it (its content tag too)."""
    subprocess.run(["skopeo", "delete", "--tls-verify=false", f"docker://{ref}"], check=True)


def reused_on_a_fresh_clone(workspace) -> str:
    """Built once, then built on a "new runner": every platform reused from the registry."""
    repository = web(workspace)
    workspace.doit("build")
    shutil.rmtree(workspace.path / ".multiarch")
    assert workspace.doit("build").stdout.count("reusing ") == len(PLATFORMS)
    return repository


def test_a_reused_image_overwritten_is_put_back_from_its_content_tag(workspace):
    repository = reused_on_a_fresh_clone(workspace)
    before = digest_of(f"{repository}:v1-arm64")

    overwrite(f"{repository}:v1-arm64")
    result = workspace.doit("build")

    assert ran(result) == ["push:web:linux/arm64"]
    assert "$ docker build " not in result.stdout
    assert digest_of(f"{repository}:v1-arm64") == before


def test_a_reused_image_the_registry_lost_is_built_and_pushed(workspace):
    """Its content tag went with it: the build runs here, and the list names what it pushed."""
    repository = reused_on_a_fresh_clone(workspace)

    delete(f"{repository}:v1-arm64")
    result = workspace.doit("build")

    # build:web inspects the list again if it changed (a new provenance attestation may)
    assert [name for name in ran(result) if name != "build:web"] == [
        "manifest:web", "push:web:linux/arm64"]
    assert result.stdout.count("$ docker build ") == 1
    pushed = raw_manifest(f"{repository}:v1-arm64")["manifests"]
    arm64 = next(entry["digest"] for entry in pushed
                 if entry["platform"]["architecture"] == "arm64")
    listed = {entry["platform"]["architecture"]: entry["digest"]
              for entry in raw_manifest(f"{repository}:v1")["manifests"]}
    assert listed["arm64"] == arm64
    assert ran(workspace.doit("build")) == []


def test_a_lost_tag_whose_image_left_the_engine_is_built_and_pushed(workspace):
    """On the classic engine: an `image rm` on the containerd store scans every image."""
    require_classic()
    repository = web(workspace)
    workspace.doit("build", docker_host=CLASSIC)

    delete(f"{repository}:v1-arm64")
    built = set(docker("images", "--no-trunc", "--format", "{{.ID}}", repository,
                       docker_host=CLASSIC).split())
    docker("image", "rm", "-f", *built, docker_host=CLASSIC)  # by ID: untagged is not gone
    result = workspace.doit("build", docker_host=CLASSIC)

    # the list is published again only if the rebuilt image differs (the builder's cache
    # usually makes the same bytes)
    assert set(ran(result)) - {"manifest:web", "build:web"} == {"push:web:linux/arm64"}
    assert result.stdout.count("$ docker build ") == 1
    listed = {entry["platform"]["architecture"]: entry["digest"]
              for entry in raw_manifest(f"{repository}:v1")["manifests"]}
    assert listed["arm64"] == digest_of(f"{repository}:v1-arm64")
    assert ran(workspace.doit("build", docker_host=CLASSIC)) == []


def test_cache_local_builds_on_a_fresh_clone(workspace):
    web(workspace, cache="local")
    workspace.doit("build")

    shutil.rmtree(workspace.path / ".multiarch")
    result = workspace.doit("build")

    assert "reusing " not in result.stdout
    assert f"[bake] {len(PLATFORMS)} builds of 1 images" in result.stdout


def test_status_says_why_a_build_is_not_up_to_date(workspace):
    web(workspace)
    workspace.doit("build")
    assert workspace.doit("status").stdout.count(": up to date") == len(PLATFORMS)

    (workspace.path / "web" / "index.html").write_text("<h1>changed</h1>\n")
    said = workspace.doit("status").stdout

    for platform in PLATFORMS:
        assert f"web {platform}: rebuild: changed: index.html" in said
