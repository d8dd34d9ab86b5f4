"""What the registries hold right now: one HEAD per tag, all asked at once, remembered per run."""

import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from ...tasks.model.manifest import DEFAULT_RETRIES
from ...tasks.model.platforms import Platform, from_oci
from ...tasks.model.reference import locate
from ..engine.api import engine_mirrors
from ..errors import DockerError
from .client import DOCKER_HUB, Registry, connect

T = TypeVar("T")
UNKNOWN = "unknown"  # the registry did not answer: neither there nor missing
_WORKERS = 16


class RegistryProbe:
    """Answers "which digest is at this reference" for a run, never raising to its callers.

    doit checks tasks one after another, so the first question asks every reference the run
    will need at once (``expect``), on a thread pool, and later ones are answered from memory.
    """

    def __init__(self, registries=(), retries: int = DEFAULT_RETRIES):
        self.registries_settings = registries
        self.retries = retries
        self.insecure_hosts = frozenset(r.host for r in registries if r.insecure)
        self.expected: set[str] = set()
        self.digests: dict[str, str | None] = {}
        self.platform_digests: dict[tuple[str, Platform], str | None] = {}
        self._documents: dict[str, tuple[dict | None, str] | str | None] = {}
        self._lock = threading.Lock()
        self._mirrors: list[str] | None = None
        self._mirrors_lock = threading.Lock()  # the pool's threads ask for them at once

    def __getstate__(self) -> dict:
        """For `doit -P process` workers: the settings and the expected references; the lock
        and the answers are per process, asked again there when needed."""
        return {"registries": self.registries_settings, "retries": self.retries,
                "expected": self.expected}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["registries"], state["retries"])
        self.expected = set(state["expected"])

    def expect(self, refs) -> None:
        self.expected.update(refs)

    def digest(self, ref: str) -> str | None:
        """The digest at ``ref``, None when absent, UNKNOWN when the registry did not answer."""
        with self._lock:
            if ref not in self.digests:
                wanted = sorted({ref, *self.expected} - set(self.digests))
                with ThreadPoolExecutor(_WORKERS) as pool:
                    self.digests.update(zip(wanted, pool.map(self._head, wanted), strict=True))
            return self.digests[ref]

    def platform_digest(self, ref: str, platform: Platform) -> str | None:
        """The digest of ``platform``'s image behind ``ref`` (an index or a plain manifest)."""
        with self._lock:
            key = (ref, platform)
            if key not in self.platform_digests:
                self.platform_digests[key] = self._platform_digest(ref, platform)
            return self.platform_digests[key]

    def registries(self, host: str) -> list[Registry]:
        """Who answers for ``host``: for docker.io the declared mirrors, then the engine's
        (asked of its `GET /info` once per probe), then Docker Hub, as the engine pulls."""
        if host != "docker.io":
            return [connect(host, self.registries_settings, self.retries)]
        with self._mirrors_lock:
            if self._mirrors is None:
                self._mirrors = engine_mirrors()
        declared = [m for r in self.registries_settings if r.host == "docker.io" for m in r.mirrors]
        mirrors = [connect(m, self.registries_settings, self.retries)
                   for m in [*declared, *self._mirrors]]
        return [*mirrors, Registry(DOCKER_HUB, retries=self.retries)]

    def _first_answer(self, ref: str,
                      ask: Callable[[Registry, str, str], T | None]) -> T | str | None:
        """``ask(registry, path, reference)`` of each registry for ``ref``'s host in turn (mirrors
        first): the first answer found; None when they answered without one, UNKNOWN when none
        answered."""
        host, path, reference = locate(ref)
        answered = False
        for registry in self.registries(host):
            try:
                found = ask(registry, path, reference)
            except DockerError:
                continue
            if found:
                return found
            answered = True
        return None if answered else UNKNOWN

    def _head(self, ref: str) -> str | None:
        return self._first_answer(ref, Registry.head)

    def _platform_digest(self, ref: str, platform: Platform) -> str | None:
        if ref not in self._documents:  # one GET per reference, however many platforms
            self._documents[ref] = self._first_answer(ref, _document)
        found = self._documents[ref]
        if not isinstance(found, tuple):
            return found
        document, digest = found
        return (pick_platform(document, platform) or digest) if document else digest


def _document(registry: Registry, path: str, reference: str) -> tuple[dict | None, str] | None:
    """(the manifest or index at ``path:reference``, its digest), or None when absent."""
    found = registry.get(path, reference)
    if not found:
        return None
    body, _, digest = found
    try:
        return json.loads(body), digest
    except ValueError:
        return None, digest


def pick_platform(document: dict, platform: Platform) -> str | None:
    """The child digest for ``platform`` in an index; None for a plain manifest."""
    for entry in document.get("manifests", []):
        if from_oci(entry.get("platform", {})) == platform:
            return entry["digest"]
    return None
