"""Stage two: push one platform's tags through the Engine API (docker SDK)."""

import re
from functools import partial
from pathlib import Path

from ...tasks.model.engines import PODMAN
from ...tasks.model.manifest import Image
from ...tasks.model.platforms import Platform
from ...tasks.model.reference import locate
from ...tasks.model.routing import Node, Routing
from ...tasks.model.tags import content_tag
from ..engine.cli import say
from ..engine.client import close, sdk
from ..engine.client import engine as docker_engine
from ..engine.facts import insecure_hint
from ..engine.family import family
from ..errors import DockerError
from ..registry import cache
from ..registry.retry import retry
from . import build as build_stage
from . import podman

_PUSHED_DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64})")
# The engine's words when it spoke HTTPS to a registry that answers plain HTTP.
_PLAIN_HTTP = "server gave HTTP response to HTTPS client"


def push(image: Image, platform: Platform, state_dir: Path | None = None,
         built: dict | None = None, routing: Routing | None = None, registries=(),
         engine: str | None = None) -> dict:
    """Push every per-platform tag and the content tag; return each tag's registry digest.

    ``built`` is what the build stage returned. An image it reused from the registry, or a
    bake pushed under its content tag, is there already: its tags are pointed at the content
    tag (again, if the registry lost them since), or, if that is gone too, it is built here
    and pushed. An image that
    vanished from the engine is built again. The push goes from the engine that built it
    (its ``builder``), straight to the registry; with podman when it built there or the
    manifest's ``engine`` is Podman. ``registries``: the manifest's settings.
    """
    built = built or {}
    rebuild = False
    if built.get("source") in ("registry", "bake"):
        digests = cache.recheck(image, platform, built, registries)
        if digests is not None and built.get("source") == "bake":  # and the content tag
            digests[f"{image.repository}:{content_tag(built['input_digest'])}"] = \
                built["image_id"]
        if digests is not None:
            return {"digests": digests}
        rebuild = True  # never in this engine: built here, whatever a tag here points at
    routing = routing or Routing()
    node = routing.node_named(built.get("builder")) or routing.node_for(platform)
    if built.get("engine") == podman.ENGINE or family(engine) == PODMAN:
        if state_dir is None:
            raise DockerError(f"{image.platform_refs(platform)[0]}: nothing built to push")
        return podman.push(image, platform, state_dir, {} if rebuild else built, node,
                           registries)
    try:
        client = docker_engine(node)
    except DockerError as err:
        raise DockerError(f"{platform}: {err.message}; rerun once it is back") from None
    try:
        return _push_tags(client, image, platform, state_dir, built, node, rebuild)
    finally:
        close(client)


def _push_tags(client, image: Image, platform: Platform, state_dir: Path | None, built: dict,
               node: Node, rebuild: bool) -> dict:
    """Tag the built image (building it first when the engine no longer has it) and push each
    per-platform tag and the content tag; their digests."""
    tags = list(image.platform_tags(platform))
    if built.get("input_digest"):
        tags.append(content_tag(built["input_digest"]))
    # The image the build stage made, by ID: after a killed run its `docker build` may still
    # finish and move the tag to an image of older inputs.
    local = None if rebuild else _local_image(
        client, built.get("image_id") or image.platform_refs(platform)[0])
    if local is None:
        if state_dir is None:
            raise DockerError(f"{image.platform_refs(platform)[0]} is not in the engine")
        local = client.images.get(
            build_stage.build(image, platform, state_dir, node)["image_id"])
    prefix = f"[{image.name} {platform}] "
    host = locate(image.repository)[0]
    digests = {}
    for tag in tags:
        ref = f"{image.repository}:{tag}"
        local.tag(image.repository, tag)
        digests[ref] = retry(partial(_push_once, client, image, tag, ref, prefix),
                             f"push {ref}", host, image.retries, prefix)
    return {"digests": digests}


def _local_image(client, name: str):
    """The engine's image ``name`` (an ID or a reference), or None."""
    try:
        return client.images.get(name)
    except sdk().errors.NotFound:
        return None


def _push_once(client, image: Image, tag: str, ref: str, prefix: str) -> str:
    """One `docker push` of one tag through the Engine API; its digest, or a DockerError.

    A plain-HTTP registry the engine speaks HTTPS to gets the daemon.json fix added.
    """
    say(f"{prefix}$ docker push {ref}")
    try:
        stream = client.images.push(image.repository, tag=tag, stream=True, decode=True)
        return _pushed_digest(stream, ref, prefix)
    except sdk().errors.APIError as err:
        failure = DockerError(f"push {ref} failed: {err.explanation or err}")
    except DockerError as err:
        failure = err
    if _PLAIN_HTTP in failure.message:
        failure.message = f"{failure.message}; {insecure_hint(locate(ref)[0])}"
    raise failure


def _pushed_digest(stream, ref: str, prefix: str) -> str:
    """Read a push's JSON progress stream to its end; errors arrive inside it, not as HTTP."""
    digest = None
    log = []
    for message in stream:
        if "error" in message:
            raise DockerError(f"push {ref} failed: {message['error']}", output="".join(log))
        status = message.get("status", "")
        line = f"{message['id']}: {status}" if "id" in message else status
        log.append(line + "\n")
        if status in ("Pushed", "Layer already exists", "Mounted from") or "digest:" in status:
            say(prefix + line)
        digest = message.get("aux", {}).get("Digest", digest)
        found = _PUSHED_DIGEST.search(status)
        if found:
            digest = found.group(1)
    if digest is None:
        raise DockerError(f"push {ref} reported no digest", output="".join(log))
    return digest
