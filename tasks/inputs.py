"""Input digests: what a per-platform build depends on, hashed, so doit can skip it."""

import hashlib
import json
import threading
from pathlib import Path

from tasks.context import StatCache, context_digest
from tasks.manifest import Image, Manifest
from tasks.platforms import Platform

_caches: dict[Path, StatCache] = {}
_caches_lock = threading.Lock()


def stat_cache(state_dir: Path | None, image: Image) -> StatCache:
    """One stat cache per image and process, kept in the state folder between runs."""
    if state_dir is None:
        return StatCache(None)
    path = state_dir / "stat" / f"{image.name}.json"
    with _caches_lock:
        if path not in _caches:
            path.parent.mkdir(parents=True, exist_ok=True)
            _caches[path] = StatCache(path)
        return _caches[path]


def input_digest(
    image: Image, platform: Platform, skip: tuple[Path, ...] = (), manifest: Manifest | None = None
) -> str:
    """The digest a per-platform build is cached under: same digest, same image.

    The context part is what the build sends, as `.dockerignore` decides. With ``manifest``,
    the input digests of the images this one is built FROM are part of it, transitively, so a
    change in a base rebuilds everything above it; the manifest's state folder also holds the
    stat caches that spare reading unchanged files.
    """
    cache = stat_cache(manifest.state_dir if manifest else None, image)
    inputs = {
        "dockerfile": hashlib.sha256(image.dockerfile.read_bytes()).hexdigest(),
        "context": context_digest(image.context, image.dockerfile, cache, skip),
        "build_args": list(image.build_args),
        "target": image.target,
        "platform": str(platform),
        "tags": list(image.platform_tags(platform)),
        "repository": image.repository,
    }
    cache.save()
    if manifest is not None and image.depends_on:
        inputs["bases"] = {
            name: _base_digest(manifest.image(name), platform, skip, manifest)
            for name in image.depends_on
        }
    encoded = json.dumps(inputs, sort_keys=True).encode()
    return "sha256:" + hashlib.sha256(encoded).hexdigest()


def _base_digest(base: Image, platform: Platform, skip, manifest: Manifest) -> str | list[str]:
    """A base's digest for the platform being built, or for all of its platforms."""
    if platform in base.platforms:
        return input_digest(base, platform, skip, manifest)
    return [input_digest(base, other, skip, manifest) for other in base.platforms]


class inputs_unchanged:  # noqa: N801 - named like doit's own checkers (config_changed)
    """doit uptodate checker: True while the build inputs hash as they did last time.

    The digest is computed when doit asks, not when tasks are created, so ``doit list``
    reads no context. It never raises: a failure to hash counts as "changed", and the
    build then reports the real problem.
    """

    def __init__(
        self,
        image: Image,
        platform: Platform,
        skip: tuple[Path, ...] = (),
        manifest: Manifest | None = None,
    ):
        self.image = image
        self.platform = platform
        self.skip = skip
        self.manifest = manifest

    def __call__(self, task, values) -> bool:
        try:
            digest = input_digest(self.image, self.platform, self.skip, self.manifest)
        except OSError:
            return False
        task.value_savers.append(lambda: {"input_digest": digest})
        return values.get("input_digest") == digest

    def __repr__(self) -> str:
        return f"inputs_unchanged({self.image.name!r}, {str(self.platform)!r})"
