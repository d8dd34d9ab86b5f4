"""Manifest lists over the registry's HTTP API, checked by other clients: skopeo reads what the
registry holds, and `docker manifest create`/`annotate`/`push`, given the same children, pushes
the very same bytes. A platform missing from the registry publishes no list at all."""

import hashlib
import json
import subprocess
import uuid
from pathlib import Path

import pytest
from multiarch.builders.errors import DockerError
from multiarch.builders.stages import manifest_list
from multiarch.tasks.model.manifest import Image
from multiarch.tasks.model.platforms import from_oci, parse_platform

from tests.conftest import docker, raw_manifest

PLATFORMS = ["linux/amd64", "linux/arm64", "linux/arm/v7"]
BUSYBOX = "127.0.0.1:5000/library/busybox:1.35"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


def raw(ref: str) -> bytes | None:
    """The manifest bytes the registry serves for ``ref``, as skopeo reads them."""
    result = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false",
                             f"docker://{ref}"], capture_output=True)
    return result.stdout if result.returncode == 0 else None


def pushed_child(ref: str, platform: str) -> dict:
    """mediaType, size and digest of ``platform``'s image behind a per-platform tag, skipping
    the attestation an index from the containerd image store carries."""
    body = raw(ref)
    assert body is not None, f"{ref} was not pushed"
    document = json.loads(body)
    if "manifests" not in document:
        return {"mediaType": document["mediaType"], "size": len(body),
                "digest": "sha256:" + hashlib.sha256(body).hexdigest()}
    images = [e for e in document["manifests"]
              if str(from_oci(e.get("platform", {}))) == platform]
    assert len(images) == 1, document
    return {key: images[0][key] for key in ("mediaType", "size", "digest")}


def entries(children: list[dict], platforms: list[str]) -> list[dict]:
    """The list's entries over ``children``, each with its declared platform, in the order
    `docker manifest push` gives them: by digest."""
    return sorted(({**child, "platform": parse_platform(platform).to_oci()}
                   for child, platform in zip(children, platforms, strict=True)),
                  key=lambda entry: entry["digest"])


def cli_list(list_ref: str, children: list[tuple[str, str]]) -> bytes:
    """What `docker manifest` pushes as ``list_ref`` over (repo@digest, platform) children."""
    docker("manifest", "create", "--insecure", list_ref, *(ref for ref, _ in children))
    for ref, platform in children:
        os, architecture, *variant = platform.split("/")
        docker("manifest", "annotate", "--os", os, "--arch", architecture,
               *(["--variant", variant[0]] if variant else []), list_ref, ref)
    docker("manifest", "push", "--purge", "--insecure", list_ref)
    return raw(list_ref)


def test_a_built_images_list_names_each_pushed_image_as_docker_manifest_would(workspace):
    context = workspace.context("app", "FROM busybox:1.35\nCOPY app.txt /\n")
    (context / "app.txt").write_text(f"{workspace.namespace}\n")
    workspace.manifest({"app": {"context": "app", "tags": ["v1"]}}, PLATFORMS)

    result = workspace.doit("build")

    repository = f"localhost:5000/{workspace.namespace}/app"
    children = [pushed_child(f"{repository}:v1-{parse_platform(p).suffix}", p)
                for p in PLATFORMS]
    body = raw(f"{repository}:v1")
    listed = json.loads(body)
    assert listed["manifests"] == entries(children, PLATFORMS)
    formats = {c["mediaType"] for c in children}
    assert listed["mediaType"] == ("application/vnd.oci.image.index.v1+json"
                                   if formats == {OCI_MANIFEST} else DOCKER_LIST)
    refs = [f"{repository}@{c['digest']}" for c in children]
    listed_refs = [f"{repository}@{e['digest']}" for e in listed["manifests"]]
    assert f"[app] $ docker buildx imagetools create -t {repository}:v1 {' '.join(listed_refs)}" \
        in result.stdout
    assert cli_list(f"{repository}:cli", list(zip(refs, PLATFORMS, strict=True))) == body


def copy_busybox(repository: str, tag: str, platform: str) -> None:
    """A single-platform Docker schema2 image at ``repository:tag``, as the classic store
    pushes one."""
    _, architecture, *variant = platform.split("/")
    subprocess.run(["skopeo", "copy", "-q", "--src-tls-verify=false", "--dest-tls-verify=false",
                    "--override-arch", architecture,
                    *(["--override-variant", variant[0]] if variant else []),
                    f"docker://{BUSYBOX}", f"docker://{repository}:{tag}"], check=True)


def image(repository: str, tags: tuple[str, ...], platforms: list[str]) -> Image:
    return Image(name="bb", context=Path("/nowhere"), dockerfile=Path("/nowhere/Dockerfile"),
                 repository=repository, tags=tags,
                 platforms=tuple(parse_platform(p) for p in platforms))


def test_docker_manifests_make_a_docker_list_like_the_clis(engine):
    repository = f"localhost:5000/it-{uuid.uuid4().hex[:10]}/bb"
    platforms = ["linux/amd64", "linux/arm/v7"]
    for platform in platforms:
        copy_busybox(repository, f"v1-{parse_platform(platform).suffix}", platform)

    published = manifest_list.publish(image(repository, ("v1",), platforms))

    children = [pushed_child(f"{repository}:v1-{parse_platform(p).suffix}", p)
                for p in platforms]
    body = raw(f"{repository}:v1")
    assert published["lists"] == {f"{repository}:v1":
                                  "sha256:" + hashlib.sha256(body).hexdigest()}
    listed = json.loads(body)
    assert listed["mediaType"] == DOCKER_LIST
    assert listed["manifests"] == entries(children, platforms)
    refs = [f"{repository}@{c['digest']}" for c in children]
    assert published["children"] == dict(zip(platforms, refs, strict=True))
    assert cli_list(f"{repository}:cli", list(zip(refs, platforms, strict=True))) == body


def test_a_platform_missing_from_any_tag_publishes_no_list(engine):
    repository = f"localhost:5000/it-{uuid.uuid4().hex[:10]}/bb"
    for tag in ("v1", "latest"):
        copy_busybox(repository, f"{tag}-amd64", "linux/amd64")
    copy_busybox(repository, "v1-armv7", "linux/arm/v7")  # latest-armv7 never pushed

    with pytest.raises(DockerError) as caught:
        manifest_list.publish(image(repository, ("v1", "latest"),
                                    ["linux/amd64", "linux/arm/v7"]))

    assert str(caught.value) == f"{repository}:latest-armv7 is not in the registry"
    assert raw_manifest(f"{repository}:v1") is None
    assert raw_manifest(f"{repository}:latest") is None
