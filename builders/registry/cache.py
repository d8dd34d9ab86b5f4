"""The registry as a build cache: content tags, and remote re-tags instead of rebuilds.

Every per-platform push also carries ``cache-<input digest>``; a fresh clone (no doit state)
whose inputs hash the same finds that tag and copies its manifest to the per-platform tags,
which costs two requests per tag instead of a build and a push.
"""

from ...tasks.model.manifest import Image
from ...tasks.model.platforms import Platform
from ...tasks.model.tags import content_tag
from ..engine.cli import say
from .client import repository_of


def reuse(image: Image, platform: Platform, input_digest: str, registries=(),
          announce: bool = True) -> dict | None:
    """Point every per-platform tag at the cached image, if the registry has one.

    Returns what the build and push stages would have: the image digest and the digest of
    each tag; None when there is nothing to reuse. ``announce`` says that a cached image is
    reused: not for one this run built (a bake), whose tags are only being set.
    """
    registry, path = repository_of(image, registries)
    cached = registry.get(path, content_tag(input_digest))
    if cached is None:
        return None
    body, media_type, digest = cached
    prefix = f"[{image.name} {platform}] "
    if announce:
        say(f"{prefix}reusing {image.repository}:{content_tag(input_digest)} ({digest[:19]})")
    digests = {}
    for tag in image.platform_tags(platform):
        ref = f"{image.repository}:{tag}"
        say(f"{prefix}$ docker buildx imagetools create -t {ref} "
              f"{image.repository}@{digest}")
        digests[ref] = registry.put(path, tag, body, media_type)
    return {"image_id": digest, "source": "registry", "digests": digests}


def recheck(image: Image, platform: Platform, built: dict, registries=()) -> dict | None:
    """The digests of an image the build stage reused, as the registry has it now: each tag
    where reuse put it, or put there again from the content tag; None when the content tag is
    gone too."""
    registry, path = repository_of(image, registries)
    digests = built.get("digests") or {}
    if digests and all(registry.head(path, ref.rpartition(":")[2]) == digest
                       for ref, digest in digests.items()):
        return digests
    reused = reuse(image, platform, built["input_digest"], registries,
                   announce=built.get("source") != "bake") if built.get("input_digest") else None
    return reused["digests"] if reused else None
