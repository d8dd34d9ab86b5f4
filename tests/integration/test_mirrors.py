"""The engine's docker.io mirrors: asked of the real dockerd once, then remembered until it
restarts or reloads a changed config file (builders.mirrors)."""

import json
import os
import signal
import time

import pytest
from multiarch.builders.engine import mirrors
from multiarch.builders.engine.api import engine_process

from tests.conftest import docker
from tests.support import nodes


@pytest.fixture
def info_calls(monkeypatch) -> list[int]:
    """Each `GET /info` asked from here on (each still goes to the engine)."""
    calls: list[int] = []
    asked = mirrors.engine_info

    def counted() -> dict:
        calls.append(1)
        return asked()

    monkeypatch.setattr(mirrors, "engine_info", counted)
    return calls


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


def test_asked_once_then_remembered(engine, tmp_path, info_calls):
    first = mirrors.engine_mirrors(tmp_path)
    assert first == running_mirrors() == ["127.0.0.1:5000"]
    assert mirrors.engine_mirrors(tmp_path) == first
    assert len(info_calls) == 1
    remembered = json.loads((tmp_path / mirrors.REMEMBERED).read_text())
    assert remembered["mirrors"] == first
    assert mirrors.engine_mirrors(None) == first  # no state folder: asked every time
    assert len(info_calls) == 2


def test_a_reload_is_seen_and_an_edit_before_it_is_not_remembered(engine, tmp_path,
                                                                   info_calls, monkeypatch):
    """Edited but not reloaded, dockerd still pulls through the old mirrors: that answer is
    given and not remembered, so after the reload the new mirrors are asked, not recalled."""
    nodes.require_node()
    monkeypatch.setenv("DOCKER_HOST", nodes.NODE)
    process = engine_process(nodes.NODE)
    assert process is not None and process.config.name == "node-daemon.json"
    config = nodes.ENGINE_DIR / "node-daemon.json"
    original = config.read_text()
    before = mirrors.engine_mirrors(tmp_path)
    assert before == running_mirrors(nodes.NODE) == ["127.0.0.1:5000"]
    after = [*before, "127.0.0.1:5999"]
    settings = json.loads(original)
    settings["registry-mirrors"] = [f"http://{host}" for host in after]
    try:
        config.write_text(json.dumps(settings))
        assert mirrors.engine_mirrors(tmp_path) == before
        assert mirrors.engine_mirrors(tmp_path) == before
        assert len(info_calls) == 3
        reload_node(after)
        assert mirrors.engine_mirrors(tmp_path) == after
        assert mirrors.engine_mirrors(tmp_path) == after
        assert len(info_calls) == 4
    finally:
        config.write_text(original)
        reload_node(before)
    assert mirrors.engine_mirrors(tmp_path) == before
    assert len(info_calls) == 5
