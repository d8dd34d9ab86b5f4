"""builders.registry.retry: which registry failures are tried again, how long between, what the
final error says. The messages are the ones the engine, the docker CLI and urllib really print."""

import pytest
from multiarch.builders.errors import DockerError
from multiarch.builders.registry import retry as retry_module
from multiarch.builders.registry.retry import backoff, cause, http_status, is_retriable, retry
from multiarch.builders.stages.buildx import push_failed_retriably

HEAD_503 = ("push localhost:5055/x/app:v1-amd64 failed: unexpected status from HEAD request to "
            "http://localhost:5055/v2/x/app/blobs/sha256:1d5c6664a18dc791b074844b16619b3e7aac41"
            "858f6ebc90da890b106f8d49ca: 503 Service Unavailable")
RESET = ('failed to do request: Head "https://localhost:45275/v2/x/bb/blobs/sha256:1d5c": read '
         "tcp 127.0.0.1:57524->127.0.0.1:45275: read: connection reset by peer")
REFUSED = 'Get "http://localhost:1/v2/": dial tcp 127.0.0.1:1: connect: connection refused'
PUT_EOF = 'Put "http://localhost:5055/v2/x/app/manifests/v1": EOF'

# fmt: off
CASES = [
    (HEAD_503, True, "answered 503 Service Unavailable"),
    ("GET http://h:5000/v2/x/manifests/v1: 500 Internal Server Error", True,
     "answered 500 Internal Server Error"),
    ("received unexpected HTTP status: 502 Bad Gateway", True, "answered 502 Bad Gateway"),
    ("toomanyrequests: status 429 Too Many Requests", True, "answered 429 Too Many Requests"),
    ("registry h: /v2/ answered 503", True, "answered 503"),
    (RESET, True, "reset the connection"),
    (REFUSED, True, "refused the connection"),
    (PUT_EOF, True, "closed the connection (EOF)"),
    ("write tcp 127.0.0.1:1->127.0.0.1:2: write: broken pipe", True,
     "closed the connection (broken pipe)"),
    ("registry h unreachable: Remote end closed connection without response", True,
     "closed the connection"),
    ("registry h unreachable: timed out", True, "timed out"),
    ("dial tcp 10.0.0.1:443: i/o timeout", True, "timed out"),
    # Final answers: another attempt gets the same.
    ("unexpected status from POST request to http://h/v2/x/blobs/uploads/: 401 Unauthorized",
     False, None),
    ("denied: requested access to the resource is denied", False, None),
    ("PUT http://h/v2/x/manifests/v1: 400 Bad Request", False, None),
    ("manifest invalid: manifest invalid", False, None),
    ("GET http://h/v2/x/manifests/v1: 404 Not Found", False, None),
    ("unexpected status 403 Forbidden (connection reset afterwards)", False, None),
    ('http: server gave HTTP response to HTTPS client', False, None),
    ("build app for linux/arm64 failed (exit 1)", False, None),
    # Numbers that are not statuses: a port, a digest, a UUID, an EOFError class name.
    ("push localhost:500/x:v1 failed: name unknown", False, None),
    ("sha256:503e1c is missing", False, None),
    ("EOFError in the build script", False, None),
]
# fmt: on


@pytest.mark.parametrize("text, retriable, words", CASES, ids=[c[0][:40] for c in CASES])
def test_what_is_retried_and_how_it_is_worded(text, retriable, words):
    assert is_retriable(text) is retriable
    if words:
        assert cause(text) == words


def test_http_status_ignores_ports_digests_and_query_strings():
    assert http_status("localhost:500/v2/x?_state=a503&digest=sha256%3A500") is None
    assert http_status("answered 503 Service Unavailable\nThe push refers") == (
        503, "Service Unavailable")


def test_backoff_doubles_from_half_a_second_and_stops_at_four():
    assert [backoff(n) for n in range(1, 8)] == [0.5, 1, 2, 4, 4, 4, 4]


@pytest.fixture
def sleeps(monkeypatch) -> list[float]:
    """The pauses retry() takes, recorded instead of slept."""
    taken = []
    monkeypatch.setattr(retry_module.time, "sleep", taken.append)
    return taken


def failing(*errors):
    """An operation that raises each error in turn, then returns "done"."""
    queue = list(errors)
    calls = []

    def operation():
        calls.append(1)
        if queue:
            raise queue.pop(0)
        return "done"

    operation.calls = calls
    return operation


def test_a_hiccup_is_retried_with_backoff_until_it_passes(sleeps, capsys):
    operation = failing(DockerError(HEAD_503), DockerError(RESET))
    assert retry(operation, "push h:1/x:v1", "h:1", 3, "[x] ") == "done"
    assert len(operation.calls) == 3
    assert sleeps == [0.5, 1]
    said = capsys.readouterr().out.splitlines()
    assert said == [
        "[x] push h:1/x:v1: registry h:1 answered 503 Service Unavailable; retry 1/3 in 0.5 s",
        "[x] push h:1/x:v1: registry h:1 reset the connection; retry 2/3 in 1 s",
    ]


def test_when_retries_run_out_the_error_names_registry_operation_and_attempts(sleeps):
    operation = failing(*(DockerError(HEAD_503, ["docker", "push"], "log line") for _ in "1234"))
    with pytest.raises(DockerError) as info:
        retry(operation, "push localhost:5055/x/app:v1-amd64", "localhost:5055", 3)
    assert info.value.message == ("push localhost:5055/x/app:v1-amd64: registry localhost:5055 "
                                  "answered 503 Service Unavailable (4 attempts)")
    assert HEAD_503 in info.value.output and "log line" in info.value.output
    assert info.value.argv == ["docker", "push"]
    assert sleeps == [0.5, 1, 2]


def test_retries_0_tries_once(sleeps):
    with pytest.raises(DockerError) as info:
        retry(failing(DockerError(RESET)), "push h/x:v1", "h", 0)
    assert info.value.message == "push h/x:v1: registry h reset the connection (1 attempt)"
    assert sleeps == []


def test_a_final_answer_is_raised_at_once_unchanged(sleeps):
    denied = DockerError("push h/x:v1 failed: 401 Unauthorized")
    operation = failing(denied)
    with pytest.raises(DockerError) as info:
        retry(operation, "push h/x:v1", "h", 3)
    assert info.value is denied and denied.message == "push h/x:v1 failed: 401 Unauthorized"
    assert len(operation.calls) == 1 and sleeps == []


def test_buildx_judges_only_its_error_lines():
    heredoc = "#5 [2/2] RUN <<EOF\n#5 0.2 timeout reached in test\nERROR: failed to solve: " \
              "process \"/bin/sh -c x\" did not complete successfully: exit code: 1"
    assert not push_failed_retriably(heredoc)
    assert push_failed_retriably("#9 pushing layers\nERROR: failed to solve: failed to push "
                                 "localhost:5000/x:v1: " + RESET)
    assert not push_failed_retriably("ERROR: Multi-platform build is not supported for the "
                                     "docker driver. EOF")
