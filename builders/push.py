"""Stage two: push one platform's tags through the Engine API (docker SDK)."""

import re

from builders.errors import DockerError
from tasks.manifest import Image
from tasks.platforms import Platform

_PUSHED_DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64})")


def engine():
    """A docker SDK client from the environment (DOCKER_HOST, the docker config's auth).

    Imported here, not at module level: ``import docker`` costs ~160 ms, and ``doit list``
    should not pay it.
    """
    import docker

    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as err:
        raise DockerError(f"cannot reach the Docker engine: {err}") from None
    return client


def push(image: Image, platform: Platform) -> dict:
    """Push every per-platform tag; return the digest the registry stored for each."""
    import docker

    client = engine()
    prefix = f"[{image.name} {platform}] "
    digests = {}
    for tag in image.platform_tags(platform):
        ref = f"{image.repository}:{tag}"
        print(f"{prefix}$ docker push {ref}", flush=True)
        try:
            stream = client.images.push(image.repository, tag=tag, stream=True, decode=True)
            digests[ref] = _pushed_digest(stream, ref, prefix)
        except docker.errors.APIError as err:
            raise DockerError(f"push {ref} failed: {err.explanation or err}") from None
    return {"digests": digests}


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
            print(prefix + line, flush=True)
        digest = message.get("aux", {}).get("Digest", digest)
        found = _PUSHED_DIGEST.search(status)
        if found:
            digest = found.group(1)
    if digest is None:
        raise DockerError(f"push {ref} reported no digest", output="".join(log))
    return digest
