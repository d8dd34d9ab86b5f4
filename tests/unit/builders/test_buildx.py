"""Who pushes an image, and how `builder: auto` makes its builder (no engine needed)."""

from pathlib import Path
from types import SimpleNamespace

import pytest
from multiarch.builders.checks.preflight import pushed_by_buildkit
from multiarch.builders.stages.argv import auto_builder_argv

CONTAINERD = {"reachable": True, "containerd_store": True}
CLASSIC = {"reachable": True, "containerd_store": False}


def image(strategy: str) -> SimpleNamespace:
    return SimpleNamespace(method=SimpleNamespace(strategy=strategy))


@pytest.mark.parametrize(("strategy", "builder", "engine", "expected"), [
    ("manifest", "auto", CLASSIC, False),  # `docker push` is the engine's
    ("buildx", None, CLASSIC, False),  # the engine's own docker driver
    ("buildx", "default", CLASSIC, False),
    ("buildx", "auto", CONTAINERD, False),  # auto keeps the engine's builder there
    ("buildx", "auto", CLASSIC, True),  # auto makes a docker-container builder
    ("buildx", "ci-builder", CONTAINERD, True),  # a named builder is a BuildKit of its own
])
def test_only_a_buildkit_of_its_own_skips_the_engines_insecure_registries(
        strategy, builder, engine, expected):
    assert pushed_by_buildkit(image(strategy), builder, engine) is expected


def test_the_auto_builder_sees_the_hosts_network_and_the_generated_config():
    config = Path("/work/.multiarch/buildkitd.toml")
    assert auto_builder_argv(config) == [
        "docker", "buildx", "create", "--name", "multiarch", "--driver", "docker-container",
        "--driver-opt", "network=host", "--buildkitd-config", str(config)]
    assert "--buildkitd-config" not in auto_builder_argv(None)
