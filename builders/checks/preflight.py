"""Before the first build: is every registry this run pushes to up, and does it let us in?
Does every tcp:// builder node accept our TLS?"""

from ...tasks.model.engines import PODMAN
from ...tasks.model.manifest import Image, Manifest
from ...tasks.model.reference import locate
from ..engine.facts import (
    addresses,
    engine_facts,
    engine_treats_insecure,
    insecure_hint,
    is_loopback,
)
from ..engine.family import family
from ..engine.nodes import refused_tls
from ..errors import DockerError
from ..registry.client import DOCKER_HUB, connect


def registry_host(image: Image) -> str:
    """The registry ``image`` is pushed to, as its API is addressed (docker.io's is
    registry-1.docker.io)."""
    host = locate(image.repository)[0]
    return DOCKER_HUB if host == "docker.io" else host


def registry_hosts(manifest: Manifest) -> list[str]:
    """Every registry the manifest pushes to, sorted: what the preflight and the doctor check."""
    return sorted({registry_host(image) for image in manifest.images if image.method.pushes})


def pushed_by_buildkit(image: Image, builder: str | None, engine: dict) -> bool:
    """Whether ``image`` reaches its registry from a BuildKit of its own rather than through
    the engine: the buildx strategy on a named builder, or on ``builder: auto`` where the
    engine's own builder cannot build several platforms (builders.stages.buildx.resolve_builder).
    That BuildKit takes its registry settings from buildkitd.toml, never from daemon.json."""
    if image.method.strategy != "buildx" or builder in (None, "default"):
        return False
    return builder != "auto" or not engine.get("containerd_store", True)


def preflight(manifest: Manifest) -> None:
    """A /v2/ probe per registry, so a registry that is down or refuses credentials stops the
    run in one line before twenty minutes of QEMU, not after; so does a tcp:// node that
    refuses our client certificate (a node that is down still falls back, in choose())."""
    problems = []
    engine = None
    for host in registry_hosts(manifest):
        try:
            connect(host, manifest.registries, manifest.retries).ping()
        except DockerError as err:
            problems.append(err.message)
            continue
        if family(manifest.engine) == PODMAN:
            continue  # each podman command is told (--tls-verify=false): no daemon to check
        if host in manifest.insecure_hosts and not is_loopback(host):
            engine = engine or engine_facts()
            if all(pushed_by_buildkit(image, manifest.builder, engine)
                   for image in manifest.images
                   if image.method.pushes and registry_host(image) == host):
                continue
            registry = {"addresses": addresses(host)}
            if engine.get("reachable") and not engine_treats_insecure(host, registry, engine):
                problems.append(f"registry {host}: {insecure_hint(host)}")
    problems += refused_tls(manifest.routing)
    if problems:
        raise DockerError("; ".join(problems))
