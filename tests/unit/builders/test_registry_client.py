"""builders.registry.client against a loopback registry: RegistryError carries the status, the
retries decide on it, and credentials come from the docker config through docker.auth."""

import base64
import http.client
import json
import ssl
import urllib.error
from types import SimpleNamespace

import pytest
from multiarch.builders.errors import DockerError, RegistryError
from multiarch.builders.registry import retry as retry_module
from multiarch.builders.registry.client import Registry, docker_config_credentials, dropped
from multiarch.builders.registry.retry import registry_cause, registry_hiccup, retry

from tests.support.loopback import Handler, serving

DIGEST = "sha256:" + "7" * 64
SECRET = "s3cret-value"


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    monkeypatch.setattr(retry_module.time, "sleep", lambda seconds: None)


@pytest.fixture
def registry():
    """A loopback registry answering HEAD of x:v1 with ``statuses`` in turn (then 200); with
    ``basic`` set it wants that Authorization header. ``seen`` holds each request's headers."""
    state = SimpleNamespace(statuses=[], basic=None, seen=[])

    class FlakyRegistry(Handler):
        def do_HEAD(self):  # noqa: N802 - http.server's name
            state.seen.append(dict(self.headers))
            if state.basic and self.headers.get("Authorization") != state.basic:
                self.reply(401, {"WWW-Authenticate": 'Basic realm="test"'})
            elif state.statuses:
                self.reply(state.statuses.pop(0))
            elif self.path != "/v2/x/manifests/v1":
                self.reply(404)
            else:
                self.reply(200, {"Docker-Content-Digest": DIGEST})

    with serving(FlakyRegistry) as host:
        state.host = host
        yield state


def client(host: str, retries: int = 2) -> Registry:
    return Registry(host, insecure=True, retries=retries)


def test_a_5xx_is_retried_and_said_with_its_status(registry, capsys):
    registry.statuses = [503]
    assert client(registry.host).head("x", "v1") == DIGEST
    assert capsys.readouterr().out == (
        f"HEAD {registry.host}/x:v1: registry {registry.host} answered 503 Service "
        "Unavailable; retry 1/2 in 0.5 s\n")


def test_when_the_attempts_run_out_the_error_carries_its_facts(registry):
    registry.statuses = [502, 502, 502]
    with pytest.raises(RegistryError) as info:
        client(registry.host).head("x", "v1")
    err = info.value
    assert err.message == (f"HEAD {registry.host}/x:v1: registry {registry.host} answered 502 "
                           "Bad Gateway (3 attempts)")
    assert (err.status, err.host, err.operation, err.attempts) == (
        502, registry.host, f"HEAD {registry.host}/x:v1", 3)
    assert f"HEAD http://{registry.host}/v2/x/manifests/v1: 502 Bad Gateway" in err.output


def test_a_final_status_is_not_retried(registry):
    registry.statuses = [403]
    with pytest.raises(RegistryError) as info:
        client(registry.host).head("x", "v1")
    assert (info.value.status, info.value.attempts) == (403, 1)
    assert registry.statuses == [] and len(registry.seen) == 1
    assert client(registry.host).head("x", "v2") is None  # 404: no such tag


def test_a_refused_connection_is_retried_and_named(capsys):
    with pytest.raises(RegistryError) as info:
        client("127.0.0.1:9", retries=1).head("x", "v1")
    assert info.value.message == ("HEAD 127.0.0.1:9/x:v1: registry 127.0.0.1:9 refused the "
                                  "connection (2 attempts)")
    assert (info.value.status, info.value.dropped) == (None, "refused the connection")


@pytest.mark.parametrize(("error", "words"), [
    (urllib.error.URLError(ConnectionRefusedError(111, "Connection refused")),
     "refused the connection"),
    (urllib.error.URLError(http.client.RemoteDisconnected("Remote end closed connection")),
     "closed the connection"),
    (ConnectionResetError(104, "Connection reset by peer"), "reset the connection"),
    (http.client.IncompleteRead(b"half"), "closed the connection mid-body"),
    (TimeoutError("timed out"), "timed out"),
    (urllib.error.URLError(ssl.SSLCertVerificationError("certificate verify failed")), None),
    (urllib.error.URLError(OSError(-2, "Name or service not known")), None),
])
def test_how_a_connection_failed(error, words):
    assert dropped(error) == words


@pytest.mark.parametrize(("status", "dropped_as", "again", "words"), [
    (503, None, True, "answered 503 Service Unavailable"),
    (429, None, True, "answered 429 Too Many Requests"),
    (404, None, False, "failed"),
    (401, None, False, "failed"),
    (None, "timed out", True, "timed out"),
    (None, None, False, "failed"),
])
def test_registry_errors_are_decided_on_their_fields(status, dropped_as, again, words):
    # The message says otherwise on purpose: only the fields count.
    err = RegistryError("503 connection reset", host="h", operation="GET h/x:v1",
                        status=status, dropped=dropped_as)
    assert (registry_hiccup(err), registry_cause(err)) == (again, words)


def raising(error: DockerError):
    def operation():
        raise error

    return operation


def test_another_programs_error_that_runs_out_becomes_a_registry_error():
    error = DockerError("push h/x:v1 failed: received unexpected HTTP status: 500 Internal "
                        "Server Error")
    with pytest.raises(RegistryError) as info:
        retry(raising(error), "push h/x:v1", "h", 1)
    assert (info.value.status, info.value.attempts, info.value.operation) == (500, 2, "push h/x:v1")
    assert info.value.dropped is None


@pytest.mark.parametrize(("said", "dropped_as"), [
    ("inspect h/x:v1 failed: unsupported manifest format", None),  # the CLI's masked 5xx
    ("push h/x:v1 failed: read: connection reset by peer", "reset the connection"),
])
def test_a_retried_text_error_is_dropped_only_when_its_words_say_so(said, dropped_as):
    with pytest.raises(RegistryError) as info:
        retry(raising(DockerError(said)), "op", "h", 0, retriable=lambda text: True)
    assert (info.value.status, info.value.dropped) == (None, dropped_as)


def config_with(tmp_path, monkeypatch, config: dict) -> None:
    folder = tmp_path / "docker-config"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    monkeypatch.setenv("DOCKER_CONFIG", str(folder))


def test_basic_credentials_of_docker_login_are_sent_after_a_401(registry, tmp_path,
                                                                 monkeypatch, capsys):
    auth = base64.b64encode(f"ci:{SECRET}".encode()).decode()
    config_with(tmp_path, monkeypatch, {"auths": {f"http://{registry.host}": {"auth": auth}}})
    registry.basic = f"Basic {auth}"
    assert client(registry.host).head("x", "v1") == DIGEST
    assert [seen.get("Authorization") for seen in registry.seen] == [None, registry.basic]
    assert SECRET not in capsys.readouterr().out


def test_a_credential_helper_is_asked(tmp_path, monkeypatch):
    helper = tmp_path / "bin" / "docker-credential-fake"
    helper.parent.mkdir()
    helper.write_text("#!/bin/sh\nread host\n"
                      f"echo '{{\"ServerURL\": \"'$host'\", \"Username\": \"ci\", "
                      f"\"Secret\": \"{SECRET}\"}}'\n")
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{helper.parent}:/usr/bin:/bin")
    config_with(tmp_path, monkeypatch, {"credHelpers": {"reg.example:5000": "fake"}})
    assert docker_config_credentials("reg.example:5000") == ("ci", SECRET)
    assert docker_config_credentials("other.example") is None


def test_without_a_docker_config_there_are_no_credentials(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "none"))
    assert docker_config_credentials("reg.example") is None


def test_credentials_the_registry_refuses_say_so(registry, tmp_path, monkeypatch):
    config_with(tmp_path, monkeypatch, {"auths": {registry.host: {
        "auth": base64.b64encode(b"ci:wrong").decode()}}})
    registry.basic = "Basic " + base64.b64encode(f"ci:{SECRET}".encode()).decode()
    with pytest.raises(RegistryError) as info:
        client(registry.host).head("x", "v1")
    assert (info.value.status, info.value.attempts) == (401, 1)
    assert "401" in info.value.message and "wrong" not in str(info.value)
