"""Input digests: what a per-platform build depends on, hashed, so doit can skip it."""

import hashlib
import json
import marshal
import threading
from collections.abc import Iterable
from pathlib import Path

from ..model.dockerfile import Pull
from ..model.files import write_atomic
from ..model.manifest import Image, Manifest
from ..model.platforms import Platform
from .ahead import Context, WalkAhead
from .walk import digest_entries, walk


class Inputs:
    """The inputs of every build of one manifest, for one doit run.

    Memoised, so a context is walked once per run however many platforms and dependents
    ask. ``probe`` (a builders.registry.probe.RegistryProbe) resolves outside base images
    for images with ``pull: true``, so a re-pushed base rebuilds what uses it; without one,
    bases are taken as they were.
    """

    def __init__(self, manifest: Manifest | None = None, probe=None, skip: tuple[Path, ...] = ()):
        self.manifest = manifest
        self.probe = probe
        self.skip = (*skip, manifest.state_dir) if manifest else skip
        self.state_dir = manifest.state_dir if manifest else None
        self._contexts: dict[str, Context] = {}
        self._files: dict[Path, str] = {}
        self._parts: dict[tuple[str, Platform], dict] = {}
        self._digests: dict[tuple[str, Platform], str] = {}
        self._lock = threading.RLock()
        self._ahead: WalkAhead | None = None

    def __getstate__(self) -> dict:
        """What `doit -P process` sends a worker (spawn/forkserver pickle every task's
        actions): the settings, not the lock or the memos, which the worker rebuilds."""
        return {"manifest": self.manifest, "probe": self.probe, "skip": self.skip}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["manifest"], state["probe"])
        self.skip = state["skip"]

    def breakdown(self, image: Image, platform: Platform) -> dict:
        """Every input of one build, by name; the digest is taken over this, with the
        context's entries replaced by their digest."""
        return with_entries(self.parts(image, platform), self.entries(image))

    def parts(self, image: Image, platform: Platform) -> dict:
        """The breakdown without the context: memoised per run, so the caller must not
        change it."""
        with self._lock:
            key = (image.name, platform)
            if key not in self._parts:
                self._parts[key] = self._parts_of(image, platform)
            return self._parts[key]

    def _parts_of(self, image: Image, platform: Platform) -> dict:
        parts = {
            "dockerfile": self._file_hash(image.dockerfile_for(platform)),
            "method": [image.method.strategy, image.method.arch, image.method.arch_arg,
                       image.method.attestations],
            "build_args": dict(image.build_args),
            "target": image.target,
            "platform": str(platform),
            "tags": list(image.platform_tags(platform)),
            "repository": image.repository,
        }
        if image.pulls:
            parts["pulls"] = [[pull.stage, pull.instruction, pull.reference, str(pull.platform),
                               self._pulled_digest(image, pull)]
                              for pull in image.pulls_for(platform)]
        return parts

    def look_ahead(self, images: Iterable[Image]) -> None:
        """Have a forked child walk ``images``' contexts while doit loads its tasks and
        state (tasks.inputs.ahead); call it before any thread starts, and ``close`` at exit.
        Asking the registry about outside bases on a thread meanwhile was measured too and
        bought nothing: the run's main thread then waited for the GIL instead."""
        images = list(images)
        if images:
            self._ahead = WalkAhead(images, self.state_dir, self.skip)

    def close(self) -> None:
        if self._ahead is not None:
            self._ahead.close()

    def digest(self, image: Image, platform: Platform) -> str:
        """The digest a per-platform build is cached under: same digest, same image."""
        with self._lock:
            key = (image.name, platform)
            if key not in self._digests:
                parts = dict(self.parts(image, platform))
                parts["context"] = self.context(image)[0]
                encoded = json.dumps(parts, sort_keys=True).encode()
                self._digests[key] = "sha256:" + hashlib.sha256(encoded).hexdigest()
            return self._digests[key]

    def context(self, image: Image) -> Context:
        """(digest, entries) of what the build of ``image`` sends (tasks.inputs.walk), walked
        once per run, not once per platform. The entries are kept as their marshal dump, a
        tenth of their size as a dict (2 MiB of a 100-image no-op's peak), until a build's
        record or `doit status` loads them (``entries``)."""
        with self._lock:
            if image.name not in self._contexts:
                sent = self._ahead.take(image.name) if self._ahead is not None else None
                if sent is None:
                    entries = walk(image, self.state_dir, self.skip)
                    sent = (digest_entries(entries), marshal.dumps(entries))
                self._contexts[image.name] = sent
            return self._contexts[image.name]

    def entries(self, image: Image) -> dict[str, str]:
        """What the build of ``image`` sends, exactly as ``context`` hashed it."""
        return marshal.loads(self.context(image)[1])

    def _file_hash(self, path: Path) -> str:
        """sha256 of a small file (a Dockerfile), read once per run however many ask."""
        with self._lock:
            if path not in self._files:
                self._files[path] = hashlib.sha256(path.read_bytes()).hexdigest()
            return self._files[path]

    def _pulled_digest(self, image: Image, pull: Pull) -> str | list[str] | None:
        """What ``pull`` gets: an image of the manifest by the input digest of the platform
        pulled (all of its platforms' if it builds no such one); an outside image by the
        digest the registry gives for that platform, or None (taken as it was) without a
        probe or with ``pull: false``."""
        found = self.manifest.locate(pull.reference) if self.manifest is not None else None
        if found is not None:
            base, fixed = found
            pulled = fixed or pull.platform
            if pulled in base.platforms:
                return self.digest(base, pulled)
            return [self.digest(base, other) for other in base.platforms]
        if self.probe is None or not image.pull:
            return None
        return self.probe.platform_digest(pull.reference, pull.platform)

    def record_path(self, image: Image, platform: Platform) -> Path | None:
        if self.state_dir is None:
            return None
        return self.state_dir / "inputs" / image.name / f"{platform.suffix}.json"

    def record(self, image: Image, platform: Platform, breakdown: dict) -> None:
        """Keep what a successful build was made of, for `status` to compare against.

        Called by doit only once the build succeeded (a value saver); written whole or not
        at all, so a killed run leaves the previous record.
        """
        path = self.record_path(image, platform)
        if path is not None:
            write_atomic(path, json.dumps(breakdown, sort_keys=True))

    def recorded(self, image: Image, platform: Platform) -> dict | None:
        path = self.record_path(image, platform)
        try:
            return json.loads(path.read_text()) if path else None
        except (OSError, ValueError):
            return None


def with_entries(parts: dict, entries: dict[str, str]) -> dict:
    """A build's breakdown: its ``parts`` (Inputs.parts) and its context's entries."""
    return {**parts, "context": entries}


def input_digest(
    image: Image, platform: Platform, skip: tuple[Path, ...] = (), manifest: Manifest | None = None
) -> str:
    """One build's input digest, outside a run (tests, tools)."""
    return Inputs(manifest, skip=skip).digest(image, platform)
