"""The engine's docker.io mirrors: read from its `GET /info`, asked once per probe and only for
a docker.io reference, and asked before Docker Hub (builders.engine.api, registry.probe)."""

import json
from types import SimpleNamespace

import pytest
from multiarch.builders.engine.api import engine_mirrors
from multiarch.builders.registry.client import DOCKER_HUB
from multiarch.builders.registry.probe import RegistryProbe
from multiarch.tasks.model.registries import RegistrySettings

from tests.support.loopback import Handler, serving

DIGEST = "sha256:" + "4" * 64


@pytest.fixture
def engine(tmp_path, monkeypatch):
    """A stand-in engine on a unix socket (DOCKER_HOST) whose `GET /info` names ``mirrors``;
    ``asked`` records each path it answers."""
    state = SimpleNamespace(mirrors=[], asked=[])

    class Engine(Handler):
        def do_GET(self):  # noqa: N802 - http.server's name
            state.asked.append(self.path)
            body = json.dumps({"RegistryConfig": {"Mirrors": state.mirrors}}).encode()
            self.reply(200, {"Content-Type": "application/json"}, body)

    with serving(Engine, tmp_path / "docker.sock") as host:
        monkeypatch.setenv("DOCKER_HOST", host)
        yield state


@pytest.fixture
def mirror():
    """A loopback registry that has library/base:1 and :2, as a docker.io mirror would."""

    class Mirror(Handler):
        def do_HEAD(self):  # noqa: N802 - http.server's name
            if self.path in ("/v2/library/base/manifests/1", "/v2/library/base/manifests/2"):
                self.reply(200, {"Docker-Content-Digest": DIGEST})
            else:
                self.reply(404)

    with serving(Mirror) as host:
        yield host


def test_the_engines_mirrors_as_hosts(engine):
    engine.mirrors = ["http://127.0.0.1:5000", "https://m.example/"]
    assert engine_mirrors() == ["127.0.0.1:5000", "m.example"]
    assert engine.asked == ["/info"]


def test_without_an_engine_there_are_none(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'none.sock'}")
    assert engine_mirrors() == []


def test_declared_mirrors_then_the_engines_then_docker_hub(engine):
    engine.mirrors = ["http://127.0.0.1:5000"]
    probe = RegistryProbe((RegistrySettings("docker.io", mirrors=("m.declared",)),), retries=0)
    assert [r.host for r in probe.registries("docker.io")] == [
        "m.declared", "127.0.0.1:5000", DOCKER_HUB]
    assert [r.host for r in probe.registries("ghcr.io")] == ["ghcr.io"]


def test_a_docker_io_base_is_answered_by_the_mirror_asking_the_engine_once(engine, mirror):
    engine.mirrors = [f"http://{mirror}"]
    probe = RegistryProbe(retries=0)
    probe.expect(["base:1", "base:2"])
    assert probe.digest("base:1") == probe.digest("base:2") == DIGEST
    assert probe.digest(f"{mirror}/other:1") is None  # not docker.io: no /info asked
    assert engine.asked == ["/info"]
    assert RegistryProbe(retries=0).digest("base:1") == DIGEST  # a new run asks again
    assert engine.asked == ["/info", "/info"]
