"""Bounded retries for registry operations, and which failures a second attempt may not meet.

Every operation that talks to a registry (SDK pushes, the registry client's requests, each
manifest list's among them, buildx pushes) goes through ``retry``: a 5xx, a 429, a dropped or
refused connection, a timeout is tried again after a doubling pause; an answer that will not
change (401, 403, 404, 400 manifest invalid) is final at once. When the attempts run out, the
error is a RegistryError naming the registry, the operation and the number of attempts.

The registry client's own RegistryError says what happened in its fields. Other programs (the
engine's push stream, buildx) only say it in words, so their text is read by the classifiers
below.
"""

import http.client
import re
import time
from collections.abc import Callable
from typing import TypeVar

from ..engine.cli import say
from ..errors import DockerError, RegistryError

T = TypeVar("T")

BACKOFF_BASE = 0.5  # seconds before the first retry; doubled each time
BACKOFF_CAP = 4.0

# "503 Service Unavailable", "status: 429", "/v2/ answered 500": a status not glued to a port,
# a digest or a path, with its reason phrase when one follows.
_STATUS = re.compile(r"(?<![\w.:/=%&?+-])([1-5]\d\d)"
                     r"(?: +([A-Z][A-Za-z]*(?: [A-Z][A-Za-z]*)*))?(?![\w.:/=%&?+-])")
_RETRIABLE_STATUS = frozenset({408, 429})
_DROPS = {
    "connection reset": "reset the connection",
    "connection refused": "refused the connection",
    "broken pipe": "closed the connection (broken pipe)",
    "remote end closed": "closed the connection",
    "connection aborted": "closed the connection",
    "incompleteread": "closed the connection mid-body",
    "unexpected eof": "closed the connection (EOF)",
    "i/o timeout": "timed out",
    "timed out": "timed out",
    "timeout": "timed out",
    "invalid checksum digest format": "sent a truncated answer",
}
_EOF = re.compile(r"\bEOF\b")
_FINAL = ("unauthorized", "denied", "manifest invalid", "manifest_invalid", "name unknown",
          "manifest unknown", "no such manifest")


def backoff(retry_number: int) -> float:
    """Seconds to wait before retry ``retry_number`` (1-based): 0.5, 1, 2, 4, 4, …"""
    return min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (retry_number - 1))


# --- the registry client's errors: decided on their fields ------------------------------


def retriable_status(status: int) -> bool:
    """5xx, 429 or 408: the registry may answer differently next time."""
    return status >= 500 or status in _RETRIABLE_STATUS


def registry_hiccup(err: RegistryError) -> bool:
    """A status that may change, or a connection that dropped before any answer."""
    if err.status is not None:
        return retriable_status(err.status)
    return err.dropped is not None


def registry_cause(err: RegistryError) -> str:
    """What the registry did, in words: "answered 503 Service Unavailable", "timed out"."""
    if err.status is not None and retriable_status(err.status):
        return f"answered {err.status} {http.client.responses.get(err.status, '')}".rstrip()
    return err.dropped or "failed"


# --- other programs' errors: decided on their words -------------------------------------


def http_status(text: str) -> tuple[int, str] | None:
    """The first HTTP status in an error text, with its reason phrase ("" when none)."""
    found = _STATUS.search(text)
    return (int(found.group(1)), found.group(2) or "") if found else None


def server_error(text: str) -> bool:
    """The registry answered 5xx, 429 or 408: it may answer differently next time."""
    status = http_status(text)
    return status is not None and retriable_status(status[0])


def final_answer(text: str) -> bool:
    """The registry said no and means it: 4xx (but 408/429), a bad manifest, no such name."""
    status = http_status(text)
    if status is not None and 400 <= status[0] < 500 and status[0] not in _RETRIABLE_STATUS:
        return True
    lowered = text.lower()
    return any(word in lowered for word in _FINAL)


def connection_dropped(text: str) -> bool:
    """The connection failed before an answer: reset, refused, closed early, timed out."""
    lowered = text.lower()
    return bool(_EOF.search(text)) or any(marker in lowered for marker in _DROPS)


def is_retriable(text: str) -> bool:
    """A registry hiccup that another attempt may not meet; a final answer never is."""
    if final_answer(text):
        return False
    return server_error(text) or connection_dropped(text)


def cause(text: str) -> str:
    """What the registry did, in words: "answered 503 Service Unavailable", "reset the
    connection"."""
    status = http_status(text)
    if status is not None and server_error(text):
        return f"answered {status[0]} {status[1]}".rstrip()
    lowered = text.lower()
    for marker, words in _DROPS.items():
        if marker in lowered:
            return words
    if _EOF.search(text):
        return "closed the connection (EOF)"
    return "failed"


# --- the loop ---------------------------------------------------------------------------


def retry(operation: Callable[[], T], what: str, host: str, retries: int, prefix: str = "",
          retriable: Callable[[str], bool] = is_retriable) -> T:
    """Run ``operation`` up to ``retries`` more times while it fails retriably.

    Args:
        operation: one attempt; raises DockerError on failure.
        what: the operation as a user reads it ("push localhost:5000/app:v1-arm64").
        host: the registry it talks to, named when the attempts run out.
        retries: how many times to try again after the first attempt.
        retriable: decides from another program's error message and output whether to try
            again; a RegistryError is decided on its status instead (registry_hiccup).
    Raises:
        DockerError: the first final failure as it was.
        RegistryError: after the last attempt, ``<what>: registry <host> answered 503 Service
            Unavailable (4 attempts)``, with the last attempt's own message and output below.
    """
    for attempt in range(retries + 1):
        try:
            return operation()
        except DockerError as err:
            if isinstance(err, RegistryError):
                again, words = registry_hiccup(err), registry_cause(err)
                status, dropped = err.status, err.dropped
            else:
                text = f"{err.message}\n{err.output}"
                again, words = retriable(text), cause(text)
                found = http_status(text) if server_error(text) else None
                status = found[0] if found else None
                dropped = words if status is None and connection_dropped(text) else None
            if not again:
                raise
            if attempt == retries:
                attempts = f"{attempt + 1} attempt{'s' if attempt else ''}"
                raise RegistryError(
                    f"{what}: registry {host} {words} ({attempts})", host=host, operation=what,
                    status=status, dropped=dropped, attempts=attempt + 1, argv=err.argv,
                    output=f"{err.message}\n{err.output}".strip()) from None
            delay = backoff(attempt + 1)
            say(f"{prefix}{what}: registry {host} {words}; retry {attempt + 1}/{retries} "
                f"in {delay:g} s")
            time.sleep(delay)
    raise AssertionError("unreachable")
