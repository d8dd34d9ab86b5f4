"""Stage two: push one platform's tags through the Engine API (docker SDK)."""

import re
from functools import partial
from pathlib import Path

from ...tasks.model.manifest import Image
from ...tasks.model.platforms import Platform
from ...tasks.model.reference import locate
from ...tasks.model.routing import LOCAL, Node, Routing
from ..checks.preflight import explain_push_failure
from ..engine import nodes
from ..engine.cli import say
from ..errors import DockerError
from ..registry import cache
from ..registry.client import connect
from ..registry.retry import retry
from . import build as build_stage

_PUSHED_DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64})")


def engine(node: Node = LOCAL):
    """A docker SDK client for ``node`` (by default the environment's: DOCKER_HOST), with the
    docker config's auth.

    Imported here, not at module level: ``import docker`` costs ~160 ms, and ``doit list``
    should not pay it.
    """
    import docker
    import requests

    where = "the Docker engine" if node.from_environment else f"builder {node.name}"
    try:
        client = nodes.client(node)
        client.ping()
    except DockerError as err:
        raise DockerError(f"cannot reach {where}: {err.message}") from None
    except (docker.errors.DockerException, requests.exceptions.RequestException) as err:
        raise DockerError(f"cannot reach {where}: {nodes.short_reason(str(err))}") from None
    return client


def push(image: Image, platform: Platform, state_dir: Path | None = None,
         built: dict | None = None, routing: Routing | None = None, registries=()) -> dict:
    """Push every per-platform tag and the content tag; return each tag's registry digest.

    ``built`` is what the build stage returned. An image it reused from the registry is
    there already, unless the registry lost it since: then its tags are pointed at the
    content tag again, or, if that is gone too, it is built here and pushed. An image that
    vanished from the engine is built again. The push goes from the engine that built it
    (its ``builder``), straight to the registry. ``registries``: the manifest's settings.
    """
    built = built or {}
    rebuild = False
    if built.get("source") == "registry":
        digests = _in_registry(image, platform, built, registries)
        if digests is not None:
            return {"digests": digests}
        rebuild = True  # never in this engine: built here, whatever a tag here points at
    routing = routing or Routing()
    node = routing.node_named(built.get("builder")) or routing.node_for(platform)
    try:
        client = engine(node)
    except DockerError as err:
        raise DockerError(f"{platform}: {err.message}; rerun once it is back") from None
    tags = list(image.platform_tags(platform))
    if built.get("input_digest"):
        tags.append(cache.content_tag(built["input_digest"]))
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
    import docker

    try:
        return client.images.get(name)
    except docker.errors.NotFound:
        return None


def _in_registry(image: Image, platform: Platform, built: dict, registries) -> dict | None:
    """The digests of an image the build stage reused from the registry, as the registry has
    it now: each tag where it was put, or put there again from the content tag; None when
    the content tag is gone too."""
    host, path, _ = locate(image.repository)
    registry = connect(host, registries, image.retries)
    digests = built.get("digests") or {}
    if digests and all(registry.head(path, ref.rpartition(":")[2]) == digest
                       for ref, digest in digests.items()):
        return digests
    reused = cache.reuse(image, platform, built["input_digest"], registries) \
        if built.get("input_digest") else None
    return reused["digests"] if reused else None


def _push_once(client, image: Image, tag: str, ref: str, prefix: str) -> str:
    """One `docker push` of one tag through the Engine API; its digest, or a DockerError."""
    import docker

    say(f"{prefix}$ docker push {ref}")
    try:
        stream = client.images.push(image.repository, tag=tag, stream=True, decode=True)
        return _pushed_digest(stream, ref, prefix)
    except docker.errors.APIError as err:
        failure = DockerError(f"push {ref} failed: {err.explanation or err}")
    except DockerError as err:
        failure = err
    failure.message = explain_push_failure(failure.message, locate(ref)[0])
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
