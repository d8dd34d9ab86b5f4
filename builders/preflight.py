"""Before the first build: is every registry this run pushes to up, and does it let us in?"""

from builders.errors import DockerError
from builders.probe import locate
from builders.registry import connect, is_loopback
from tasks.manifest import Manifest

INSECURE_HINT = (
    'the engine does not treat {host} as insecure: add "insecure-registries": ["{host}"] to '
    "/etc/docker/daemon.json and restart dockerd"
)


def registry_hosts(manifest: Manifest) -> list[str]:
    hosts = [locate(image.repository)[0] for image in manifest.images if image.method.pushes]
    return sorted({"registry-1.docker.io" if host == "docker.io" else host for host in hosts})


def preflight(manifest: Manifest) -> None:
    """A /v2/ probe per registry, so a registry that is down or refuses credentials stops the
    run in one line before twenty minutes of QEMU, not after."""
    problems = []
    engine = None
    for host in registry_hosts(manifest):
        try:
            connect(host, manifest.registries, manifest.retries).ping()
        except DockerError as err:
            problems.append(err.message)
            continue
        if host in manifest.insecure_hosts and not is_loopback(host):
            from builders.doctor import engine_facts, engine_treats_insecure, resolve

            engine = engine or engine_facts()
            registry = {"addresses": resolve(host)}
            if engine.get("reachable") and not engine_treats_insecure(host, registry, engine):
                problems.append(f"registry {host}: {INSECURE_HINT.format(host=host)}")
    if problems:
        raise DockerError("; ".join(problems))


def explain_push_failure(message: str, host: str) -> str:
    """Add the daemon.json fix to the engine's raw TLS error for a plain-HTTP registry."""
    if "server gave HTTP response to HTTPS client" in message:
        return f"{message}; {INSECURE_HINT.format(host=host)}"
    return message
