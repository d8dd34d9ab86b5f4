"""Input digests: what a per-platform build depends on, hashed, so doit can skip it."""

import hashlib
import json
import os
import stat
from pathlib import Path

from tasks.manifest import Image, Manifest
from tasks.platforms import Platform


def context_digest(context: Path, skip: tuple[Path, ...] = ()) -> str:
    """Hash every file of a build context: relative path, executable bit and content.

    mtimes are left out on purpose, so ``touch`` rebuilds nothing. ``skip`` holds folders
    inside the context that are ours (the state folder) and would change on every run.
    """
    digest = hashlib.sha256()
    skipped = {path.resolve() for path in skip}
    for root, dirs, files in os.walk(context):
        dirs[:] = sorted(d for d in dirs if (Path(root) / d).resolve() not in skipped)
        for name in sorted(dirs + files):
            path = Path(root) / name
            relative = path.relative_to(context).as_posix()
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                kind, content = "link", os.readlink(path).encode()
            elif stat.S_ISDIR(info.st_mode):
                kind, content = "dir", b""
            elif stat.S_ISREG(info.st_mode):
                kind, content = "file", path.read_bytes()
            else:
                continue  # sockets and pipes: Docker does not send them either
            executable = bool(info.st_mode & stat.S_IXUSR)
            digest.update(f"{kind}\0{relative}\0{executable}\0{len(content)}\0".encode())
            digest.update(content)
    return "sha256:" + digest.hexdigest()


def input_digest(
    image: Image, platform: Platform, skip: tuple[Path, ...] = (), manifest: Manifest | None = None
) -> str:
    """The digest a per-platform build is cached under: same digest, same image.

    With ``manifest``, the input digests of the images this one is built FROM are part of
    it, transitively, so a change in a base rebuilds everything above it.
    """
    inputs = {
        "dockerfile": hashlib.sha256(image.dockerfile.read_bytes()).hexdigest(),
        "context": context_digest(image.context, skip),
        "build_args": list(image.build_args),
        "target": image.target,
        "platform": str(platform),
        "tags": list(image.platform_tags(platform)),
        "repository": image.repository,
    }
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
