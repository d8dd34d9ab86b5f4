"""Who pushes an image, and how `builder: auto` makes its builder (no engine needed)."""

from pathlib import Path
from types import SimpleNamespace

import pytest
from multiarch.builders.checks.preflight import pushed_by_buildkit
from multiarch.builders.stages import buildx
from multiarch.builders.stages.argv import auto_builder_argv, node_builder_argvs
from multiarch.tasks.model.platforms import parse_platform
from multiarch.tasks.model.routing import Node

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


def test_a_node_builder_names_every_node_s_platforms():
    amd64, arm64, armv7 = (parse_platform(p) for p in ("linux/amd64", "linux/arm64",
                                                       "linux/arm/v7"))
    argvs = node_builder_argvs([("default", [amd64, armv7]), ("ssh://arm-node", [arm64])],
                               Path("/s/buildkitd.toml"))
    common = ["--driver", "docker-container", "--driver-opt", "network=host"]
    assert argvs == [
        ["docker", "buildx", "create", "--name", "multiarch-nodes", "--node",
         "multiarch-nodes0", *common, "--platform", "linux/amd64,linux/arm/v7",
         "--buildkitd-config", "/s/buildkitd.toml", "default"],
        ["docker", "buildx", "create", "--append", "--name", "multiarch-nodes", "--node",
         "multiarch-nodes1", *common, "--platform", "linux/arm64",
         "--buildkitd-config", "/s/buildkitd.toml", "ssh://arm-node"],
    ]


def test_a_node_s_endpoint_is_its_host_its_context_or_the_environment_s(monkeypatch):
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    assert buildx.endpoint(Node()) == "default"
    assert buildx.endpoint(Node(context="arm")) == "arm"
    monkeypatch.setenv("DOCKER_HOST", "unix:///run/x.sock")
    assert buildx.endpoint(Node()) == "unix:///run/x.sock"
    assert buildx.endpoint(Node(docker_host="tcp://n:2376")) == "tcp://n:2376"
