"""builders.probe: what a base points at per platform, asked of a registry over HTTP."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from multiarch.builders.registry.probe import UNKNOWN, RegistryProbe
from multiarch.tasks.model.platforms import parse_platform

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

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            seen.append(self.path)
            if self.path != "/v2/base/manifests/1":
                self.send_error(404)
                return
            body = json.dumps(INDEX).encode()
            self.send_response(200)
            self.send_header("Content-Type", INDEX["mediaType"])
            self.send_header("Docker-Content-Digest", "sha256:" + "9" * 64)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()


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


def test_answers_learned_elsewhere_are_not_asked_again(registry):
    host, seen = registry
    probe = RegistryProbe(retries=0)
    arm64 = parse_platform("linux/arm64")
    probe.learn({(f"{host}/base:1", arm64): "sha256:" + "5" * 64})
    assert probe.knows(f"{host}/base:1", arm64)
    assert probe.platform_digest(f"{host}/base:1", arm64) == "sha256:" + "5" * 64
    assert seen == []


def test_a_registry_that_does_not_answer_is_unknown():
    probe = RegistryProbe(retries=0)
    assert probe.platform_digest("127.0.0.1:9/base:1", parse_platform("linux/amd64")) == UNKNOWN
