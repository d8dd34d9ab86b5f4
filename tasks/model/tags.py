"""The tags multiarch derives: per-platform tags of a list's tag, and content tags of inputs."""

import hashlib

from .platforms import Platform

TAG_MAX = 128  # Docker's longest tag
CONTENT_TAG_PREFIX = "cache-"


def platform_tag(tag: str, platform: Platform) -> str:
    """``v1`` for linux/arm64 is ``v1-arm64``; a tag too long for its suffix is cut short.

    Docker allows 128-character tags, so a long list tag must still name its children: the
    cut keeps the tag's start and adds 8 hex digits of its sha256, so two long tags that share
    a start never share a per-platform tag.
    """
    plain = f"{tag}-{platform.suffix}"
    if len(plain) <= TAG_MAX:
        return plain
    digest = hashlib.sha256(tag.encode()).hexdigest()[:8]
    keep = TAG_MAX - len(platform.suffix) - len(digest) - 2
    return f"{tag[:keep]}-{digest}-{platform.suffix}"


def content_tag(input_digest: str) -> str:
    """The tag a build is cached under; the input digest already names the platform."""
    return CONTENT_TAG_PREFIX + input_digest.removeprefix("sha256:")[:32]
