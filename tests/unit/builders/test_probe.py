"""builders.registry.probe: what a base points at per platform, asked of a registry over HTTP."""

import json

import pytest
from multiarch.builders.registry.probe import UNKNOWN, RegistryProbe
from multiarch.tasks.model.platforms import parse_platform

from tests.support.loopback import Handler, serving

INDEX = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.index.v1+json",
    "manifests": [
        {"digest": "sha256:" + "1" * 64, "platform": {"os": "linux", "architecture": "amd64"}},
        {"digest": "sha256:" + "2" * 64, "platform": {"os": "linux", "architecture": "arm64"}},
    ],
}


@pytest.fixture
def registry():
    """A loopback registry serving one index at base:1; it counts the GETs it answers."""
    seen: list[str] = []

    class Registry(Handler):
        def do_GET(self):  # noqa: N802 - http.server's name
            seen.append(self.path)
            if self.path != "/v2/base/manifests/1":
                self.reply(404)
                return
            self.reply(200, {"Content-Type": INDEX["mediaType"],
                             "Docker-Content-Digest": "sha256:" + "9" * 64},
                       json.dumps(INDEX).encode())

    with serving(Registry) as host:
        yield host, seen


def test_one_get_per_reference_answers_every_platform(registry):
    host, seen = registry
    probe = RegistryProbe(retries=0)
    ref = f"{host}/base:1"
    assert probe.platform_digest(ref, parse_platform("linux/amd64")) == "sha256:" + "1" * 64
    assert probe.platform_digest(ref, parse_platform("linux/arm64")) == "sha256:" + "2" * 64
    # a platform the index lacks: the index's own digest (what a build would fail on)
    assert probe.platform_digest(ref, parse_platform("linux/s390x")) == "sha256:" + "9" * 64
    assert seen == ["/v2/base/manifests/1"]
    assert probe.platform_digest(f"{host}/base:2", parse_platform("linux/amd64")) is None


def test_a_registry_that_does_not_answer_is_unknown():
    probe = RegistryProbe(retries=0)
    assert probe.platform_digest("127.0.0.1:9/base:1", parse_platform("linux/amd64")) == UNKNOWN
