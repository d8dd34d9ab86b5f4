"""`engine:`: Docker or Podman, and the Docker-only keys a Podman manifest is refused with."""

from pathlib import Path

import pytest
from multiarch.tasks.model.errors import ManifestError
from multiarch.tasks.model.manifest import parse_manifest
from multiarch.tasks.model.routing import Node


def manifest(tmp_path: Path, image: dict | None = None, **top):
    (tmp_path / "app").mkdir(exist_ok=True)
    (tmp_path / "app" / "Dockerfile").write_text("FROM busybox:1.35\n")
    document = {"version": 1, "platforms": ["linux/amd64", "linux/arm64"],
                "images": {"app": {"context": "app", **(image or {})}}, **top}
    return parse_manifest(document, tmp_path / "multiarch.yaml", "multiarch.yaml")


def error(tmp_path: Path, image: dict | None = None, **top) -> str:
    with pytest.raises(ManifestError) as caught:
        manifest(tmp_path, image, **top)
    text = str(caught.value)
    assert "\n" not in text
    return text


def test_the_engine_is_unset_docker_or_podman(tmp_path):
    assert manifest(tmp_path).engine is None
    assert manifest(tmp_path, engine="docker").engine == "docker"
    assert manifest(tmp_path, engine="podman").engine == "podman"


def test_an_unknown_engine_names_the_allowed_ones(tmp_path):
    assert error(tmp_path, engine="containerd") == (
        "multiarch.yaml: engine: unknown engine 'containerd'; allowed: docker, podman")


@pytest.mark.parametrize(("image", "top", "expected"), [
    ({}, {"strategy": "buildx"},
     "multiarch.yaml: strategy: strategy buildx needs Docker's buildx; with engine: podman use "
     "strategy: manifest (a podman build per platform, then the list)"),
    ({"strategy": "buildx"}, {},
     "multiarch.yaml: images.app.strategy: strategy buildx needs Docker's buildx"),
    ({}, {"builder": "auto"},
     "multiarch.yaml: builder: builder names a buildx builder, which engine: podman has none"),
    ({"attestations": "provenance"}, {},
     "multiarch.yaml: images.app.attestations: attestations are BuildKit's"),
    ({"outputs": [{"type": "tar", "dest": "app.tar"}]}, {},
     "multiarch.yaml: images.app.outputs: outputs besides registry are exported by buildx"),
    ({}, {"builders": {"linux/arm64": {"docker_host": "ssh://arm-node"}}},
     "multiarch.yaml: builders.linux/arm64: engine: podman reaches a node by connection"),
    ({}, {"builders": {"default": {"context": "x"}}},
     "multiarch.yaml: builders.default: engine: podman reaches a node by connection"),
])
def test_docker_only_keys_are_refused_with_podman(tmp_path, image, top, expected):
    assert error(tmp_path, image, engine="podman", **top).startswith(expected)


def test_attestations_false_and_the_registry_output_are_fine_with_podman(tmp_path):
    found = manifest(tmp_path, {"attestations": "false", "outputs": [{"type": "registry"}]},
                     engine="podman")
    assert found.images[0].method.attestations == "false"


def test_a_connection_routes_a_platform_under_podman_only(tmp_path):
    routing = manifest(tmp_path, engine="podman",
                       builders={"linux/arm64": {"connection": "arm-node",
                                                 "emulate": False}}).routing
    [(_, node)] = routing.routes
    assert node == Node(connection="arm-node", emulate=False)
    assert node.name == "arm-node" and not node.from_environment
    assert error(tmp_path, builders={"linux/arm64": {"connection": "arm-node"}}) == (
        "multiarch.yaml: builders.linux/arm64.connection: connection names a podman system "
        "connection: set `engine: podman`, or use docker_host or context")
    assert "invalid connection name '--url=x'" in error(
        tmp_path, engine="podman", builders={"linux/arm64": {"connection": "--url=x"}})
