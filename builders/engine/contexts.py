"""The docker context a tcp:// node with `tls:` becomes when buildx must reach it (#19).

`docker buildx create` takes a docker context or a bare DOCKER_HOST, and for a bare tcp://
host it ignores DOCKER_TLS_VERIFY and DOCKER_CERT_PATH: it speaks plain HTTP, and the daemon
answers `Client sent an HTTP request to an HTTPS server`. A context carries the TLS files, so
the node gets one, made by `docker context create` as a user would, and kept in step with the
node's `tls:` (the docker CLI keeps its own copy of the three files, 0600, under
~/.docker/contexts/tls/).
"""

import json
from pathlib import Path

from ...tasks.model.routing import Node
from ..errors import DockerError
from .cli import run
from .client import cert_path

PREFIX = "multiarch-"
DESCRIPTION = "made by multiarch from builders: with tls:"
FILES = ("ca.pem", "cert.pem", "key.pem")


def context_name(node: Node) -> str:
    """`multiarch-tcp-10.77.0.4-2376` for tcp://10.77.0.4:2376: one context per node."""
    return PREFIX + node.tls.folder.name


def docker_endpoint(node: Node, folder: Path) -> str:
    """The `--docker` value: the host and the three files under their CLI names."""
    if "," in str(folder):  # the value is comma-separated, with no quoting of its own
        raise DockerError(f"builder {node.name}: the state folder {folder} holds a comma, "
                          "which a docker context's --docker value cannot carry")
    return ",".join([f"host={node.docker_host}",
                     *(f"{name.split('.')[0]}={folder / name}" for name in FILES)])


def tls_context(node: Node) -> str:
    """The docker context for ``node``, created, or updated when its host or any of the three
    files differs from the node's `tls:`; left alone (and unsaid) when it matches."""
    name = context_name(node)
    folder = cert_path(node.tls)
    current = inspect(name)
    if current is not None and matches(current, node.docker_host, folder):
        return name
    endpoint = docker_endpoint(node, folder)
    if current is None:
        run(["docker", "context", "create", name, "--description", DESCRIPTION,
             "--docker", endpoint], f"create the docker context {name}")
    else:
        run(["docker", "context", "update", name, "--docker", endpoint],
            f"update the docker context {name}")
    return name


def inspect(name: str) -> dict | None:
    """`docker context inspect`'s record of ``name``; None when there is no such context."""
    try:
        output = run(["docker", "context", "inspect", name], f"inspect the context {name}",
                     echo=False)
    except DockerError:
        return None
    found = json.loads(output)
    return found[0] if found else None


def matches(context: dict, host: str, folder: Path) -> bool:
    """True when ``context`` points at ``host`` and holds the files in ``folder``, byte for
    byte (read where `docker context inspect` says the CLI stores them)."""
    endpoint = (context.get("Endpoints") or {}).get("docker") or {}
    if endpoint.get("Host") != host or endpoint.get("SkipTLSVerify"):
        return False
    stored = Path((context.get("Storage") or {}).get("TLSPath") or "") / "docker"
    for name in FILES:
        try:
            if (stored / name).read_bytes() != (folder / name).read_bytes():
                return False
        except OSError:
            return False
    return True
