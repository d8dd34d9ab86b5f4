"""The engine's docker.io mirrors, asked of the real dockerd's `GET /info` (builders.engine.api):
what `docker info` says, used before Docker Hub, and after a reload the new ones."""

import json
import os
import signal
import time

from multiarch.builders.engine.api import engine_mirrors
from multiarch.builders.registry.client import Registry
from multiarch.builders.registry.probe import RegistryProbe, pick_platform
from multiarch.tasks.model.platforms import parse_platform

from tests.conftest import docker
from tests.support import nodes


def running_mirrors(host: str | None = None) -> list[str]:
    """What `docker info` says the engine pulls docker.io images through."""
    said = json.loads(docker("info", "--format", "{{json .RegistryConfig.Mirrors}}",
                             docker_host=host))
    return [mirror.split("://", 1)[-1].rstrip("/") for mirror in said or []]


def reload_node(expected: list[str]) -> None:
    """SIGHUP the node's dockerd, as `systemctl reload docker` does, and wait for ``expected``."""
    os.kill(nodes.pid(), signal.SIGHUP)
    deadline = time.monotonic() + 30
    while running_mirrors(nodes.NODE) != expected:
        assert time.monotonic() < deadline, f"the node did not reload to {expected}"
        time.sleep(0.2)


def test_the_engines_mirrors_are_what_docker_info_says(engine):
    assert engine_mirrors() == running_mirrors() == ["127.0.0.1:5000"]


def test_a_docker_io_base_resolves_through_the_engines_mirror(engine):
    arm64 = parse_platform("linux/arm64")
    body, _, _ = Registry("127.0.0.1:5000", insecure=True).get("library/busybox", "1.35")
    expected = pick_platform(json.loads(body), arm64)
    assert expected and RegistryProbe().platform_digest("busybox:1.35", arm64) == expected


def test_a_reload_is_seen_by_the_next_question(engine, monkeypatch):
    """Nothing is remembered: once dockerd has reloaded its config, the new mirrors are asked."""
    nodes.require_node()
    monkeypatch.setenv("DOCKER_HOST", nodes.NODE)
    config = nodes.ENGINE_DIR / "node-daemon.json"
    original = config.read_text()
    before = engine_mirrors()
    assert before == running_mirrors(nodes.NODE) == ["127.0.0.1:5000"]
    after = [*before, "127.0.0.1:5999"]
    settings = json.loads(original)
    settings["registry-mirrors"] = [f"http://{host}" for host in after]
    try:
        config.write_text(json.dumps(settings))
        reload_node(after)
        assert engine_mirrors() == after
    finally:
        config.write_text(original)
        reload_node(before)
    assert engine_mirrors() == before
