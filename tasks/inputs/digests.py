"""Input digests: what a per-platform build depends on, hashed, so doit can skip it."""

import contextlib
import hashlib
import json
import os
import threading
from pathlib import Path

from ..doit.checkers import CHECKER_SIGNATURE
from ..model.manifest import Image, Manifest
from ..model.platforms import Platform
from .prefetch import Context, Prefetch, outside_bases, unpack, walk
from .walk import digest_entries


class Inputs:
    """The inputs of every build of one manifest, for one doit run.

    Memoised, so a context is walked once per run however many platforms and dependents
    ask; a tasks.prefetch.Prefetch may have walked it already, in a child.
    ``probe`` (a builders.probe.RegistryProbe) resolves outside base images for images with
    ``pull: true``, so a re-pushed base rebuilds what uses it; without one, bases are taken
    as they were.
    """

    def __init__(self, manifest: Manifest | None = None, probe=None, skip: tuple[Path, ...] = (),
                 prefetched: Prefetch | None = None):
        self.manifest = manifest
        self.probe = probe
        self.skip = (*skip, manifest.state_dir) if manifest else skip
        self.state_dir = manifest.state_dir if manifest else None
        self.prefetch = prefetched
        self._learned = False  # the prefetch's base digests handed to the probe
        self._contexts: dict[str, Context] = {}
        self._files: dict[Path, str] = {}
        self._parts: dict[tuple[str, Platform], dict] = {}
        self._digests: dict[tuple[str, Platform], str] = {}
        self._lock = threading.RLock()
        self._asking: threading.Thread | None = None

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
        if self.manifest is not None and image.depends_on:
            parts["bases"] = {
                name: self._base_digest(self.manifest.image(name), platform)
                for name in image.depends_on
            }
        if self.probe is not None and image.pull and image.base_images:
            parts["base_images"] = self._base_images(image, platform)
        return parts

    def _base_images(self, image: Image, platform: Platform) -> dict[str, str | None]:
        """What each outside base of ``image`` points at for ``platform``, from the probe.

        The prefetch child's answers are taken first. Whatever is still unknown then: the
        first call asks about every outside base of the manifest on a thread and walks the
        contexts of the next images meanwhile (the registry, or the engine's ``/info`` for
        its mirrors when they are not remembered, can take tens of ms).
        """
        if self.prefetch is not None and not self._learned:
            self._learned = True
            self.probe.learn(self.prefetch.base_digests())
        known = all(self.probe.knows(ref, platform) for ref in image.base_images)
        if not known and self._asking is None and self.manifest is not None:
            self._asking = threading.Thread(
                target=self._ask, args=(outside_bases(self.manifest.images),),
                daemon=True)
            self._asking.start()
            for other in self.manifest.images:
                if not self._asking.is_alive():
                    break
                if other.name not in self._contexts:
                    with contextlib.suppress(OSError, ValueError):  # raised again when checked
                        self.context(other)
        return {ref: self.probe.platform_digest(ref, platform) for ref in image.base_images}

    def _ask(self, wanted: list[tuple[str, Platform]]) -> None:
        for ref, platform in wanted:
            try:
                self.probe.platform_digest(ref, platform)
            except Exception:  # noqa: BLE001 - the check asks again and reports it there
                return

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

    def entries(self, image: Image) -> dict[str, str]:
        """What the build of ``image`` sends (tasks.context.context_entries), once per run."""
        with self._lock:
            digest, entries = self.context(image)
            if isinstance(entries, bytes):
                entries = unpack(entries)
                if entries is None:  # not what the child dumped: walk here
                    entries = walk(image, self.state_dir, self.skip)
                    digest = digest_entries(entries)
                self._contexts[image.name] = (digest, entries)
            return entries

    def context(self, image: Image) -> Context:
        """(digest, entries) of an image's context, walked once per run (not once per
        platform), by the prefetch child if it did; the entries may still be the child's
        marshal dump (prefetch.unpack)."""
        with self._lock:
            if image.name not in self._contexts:
                found = self.prefetch.context(image, self.skip) if self.prefetch else None
                if found is None:
                    entries = walk(image, self.state_dir, self.skip)
                    found = (digest_entries(entries), entries)
                self._contexts[image.name] = found
            return self._contexts[image.name]

    def _file_hash(self, path: Path) -> str:
        """sha256 of a small file (a Dockerfile), read once per run however many ask."""
        with self._lock:
            if path not in self._files:
                self._files[path] = hashlib.sha256(path.read_bytes()).hexdigest()
            return self._files[path]

    def _base_digest(self, base: Image, platform: Platform) -> str | list[str]:
        """A base's digest for the platform being built, or for all of its platforms."""
        if platform in base.platforms:
            return self.digest(base, platform)
        return [self.digest(base, other) for other in base.platforms]

    def record_path(self, image: Image, platform: Platform) -> Path | None:
        if self.state_dir is None:
            return None
        return self.state_dir / "inputs" / image.name / f"{platform.suffix}.json"

    def record(self, image: Image, platform: Platform, breakdown: dict) -> None:
        """Keep what a successful build was made of, for `status` to compare against.

        Called by doit only once the build succeeded (a value saver); written whole or not
        at all (a temporary file renamed), so a killed run leaves the previous record.
        """
        path = self.record_path(image, platform)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(breakdown, sort_keys=True))
            os.replace(tmp, path)

    def recorded(self, image: Image, platform: Platform) -> dict | None:
        path = self.record_path(image, platform)
        try:
            return json.loads(path.read_text()) if path else None
        except (OSError, ValueError):
            return None


def with_entries(parts: dict, entries: dict[str, str] | bytes) -> dict:
    """A build's breakdown: its ``parts`` (Inputs.parts) and its context's entries."""
    return {**parts, "context": unpack(entries)}


def input_digest(
    image: Image, platform: Platform, skip: tuple[Path, ...] = (), manifest: Manifest | None = None
) -> str:
    """One build's input digest, outside a run (tests, tools)."""
    return Inputs(manifest, skip=skip).digest(image, platform)


def explain(before: dict | None, after: dict) -> list[str]:
    """Why a build is not up to date: what differs between two breakdowns, most telling first."""
    if before is None:
        return ["never built here"]
    reasons = []
    if before.get("dockerfile") != after["dockerfile"]:
        reasons.append("Dockerfile changed")
    old, new = before.get("context", {}), after["context"]
    changed = sorted(path for path in new if path in old and old[path] != new[path])
    added = sorted(set(new) - set(old))
    removed = sorted(set(old) - set(new))
    for label, paths in (("changed", changed), ("added", added), ("removed", removed)):
        if paths:
            more = f" (+{len(paths) - 3} more)" if len(paths) > 3 else ""
            reasons.append(f"{label}: {', '.join(paths[:3])}{more}")
    old_args, new_args = before.get("build_args", {}), after["build_args"]
    for name in sorted(set(old_args) | set(new_args)):
        if old_args.get(name) != new_args.get(name):
            reasons.append(f"build arg {name} changed")
    for key in ("target", "platform", "tags", "repository"):
        if before.get(key) != after.get(key):
            reasons.append(f"{key} changed")
    for name, digest in after.get("bases", {}).items():
        if before.get("bases", {}).get(name) != digest:
            reasons.append(f"base image {name} changed")
    for ref, digest in after.get("base_images", {}).items():
        if before.get("base_images", {}).get(ref) != digest:
            reasons.append(f"{ref} now points at {str(digest)[:19]}")
    return reasons or ["inputs unchanged; not yet recorded as done"]


class inputs_unchanged:  # noqa: N801 - named like doit's own checkers (config_changed)
    """doit uptodate checker: True while the build inputs hash as they did last time.

    ``platform`` may be several platforms, for a buildx build that makes them all at once.
    The digest is computed when doit asks, not when tasks are created, so ``doit list``
    reads no context. It never raises: a failure to hash counts as "changed", and the
    build then reports the real problem.
    """

    __signature__ = CHECKER_SIGNATURE

    def __init__(self, image: Image, platform: Platform | tuple[Platform, ...],
                 inputs: Inputs | None = None):
        self.image = image
        self.platforms = platform if isinstance(platform, tuple) else (platform,)
        self.inputs = inputs or Inputs()

    def __call__(self, task, values) -> bool:
        try:
            digests = [self.inputs.digest(self.image, p) for p in self.platforms]
            parts = [self.inputs.parts(self.image, p) for p in self.platforms]
            entries = self.inputs.context(self.image)[1]
        except (OSError, ValueError):
            return False
        digest = digests[0] if len(digests) == 1 else "+".join(digests)

        def save():
            # what was hashed here, loaded only now: a no-op never needs the entries
            for platform, part in zip(self.platforms, parts, strict=True):
                self.inputs.record(self.image, platform, with_entries(part, entries))
            return {"input_digest": digest}

        task.value_savers.append(save)
        return values.get("input_digest") == digest

    def __repr__(self) -> str:
        platforms = ", ".join(repr(str(p)) for p in self.platforms)
        return f"inputs_unchanged({self.image.name!r}, {platforms})"
