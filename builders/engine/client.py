"""How to reach an engine: a CLI subprocess's environment, and the one docker SDK client factory."""

import re
from types import ModuleType

from ...tasks.model.routing import LOCAL, Node
from ..errors import DockerError


def sdk() -> ModuleType:
    """The docker SDK module, imported on first use: task creation and a no-op run never load
    it. Every use of the SDK (clients, errors, `docker.auth`) goes through here."""
    import docker

    return docker


def cli_env(node: Node) -> dict[str, str | None]:
    """What a docker CLI subprocess needs to talk to ``node`` (None: unset the variable)."""
    if node.docker_host:
        return {"DOCKER_HOST": node.docker_host, "DOCKER_CONTEXT": None}
    if node.context:
        return {"DOCKER_CONTEXT": node.context, "DOCKER_HOST": None}
    return {}


def reach(node: Node = LOCAL, timeout: float | None = None):
    """A docker SDK client for ``node`` that has answered a ping.

    A context is resolved to its endpoint and TLS here; ``ssh://`` goes through the system's
    ssh client, as the docker CLI does (no paramiko).

    Raises:
        DockerError: why the engine cannot be reached, in the OS's words (`Connection
        refused`), or that the context does not exist.
    """
    docker = sdk()
    import requests  # docker's own transport, loaded with it

    kwargs = {"timeout": timeout} if timeout else {}
    try:
        if node.from_environment:
            client = docker.from_env(**kwargs)
        elif node.docker_host:
            client = docker.DockerClient(base_url=node.docker_host,
                                         use_ssh_client=node.docker_host.startswith("ssh://"),
                                         **kwargs)
        else:
            context = docker.ContextAPI.get_context(node.context)
            if context is None:
                raise DockerError(f"no docker context {node.context!r} (see `docker context ls`)")
            client = docker.DockerClient(base_url=context.Host, tls=context.TLSConfig,
                                         use_ssh_client=context.Host.startswith("ssh://"),
                                         **kwargs)
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException) as err:
        raise DockerError(short_reason(str(err)) or type(err).__name__) from None
    except OSError as err:
        raise DockerError(err.strerror or str(err) or type(err).__name__) from None
    return client


def engine(node: Node = LOCAL):
    """A docker SDK client for ``node`` (by default the environment's: DOCKER_HOST), with the
    docker config's auth; DockerError `cannot reach ...` when it does not answer."""
    where = "the Docker engine" if node.from_environment else f"builder {node.name}"
    try:
        return reach(node)
    except DockerError as err:
        raise DockerError(f"cannot reach {where}: {err.message}") from None


def short_reason(text: str) -> str:
    """The OS's words from a wrapped requests/urllib3 error (`[Errno 111] Connection refused`)."""
    found = (re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
             or re.search(r"Error\(-?\d+, '([^']+)'\)", text))  # FileNotFoundError(2, '…')
    if found:
        return found.group(1).strip()
    line = (text.splitlines() or [""])[0]
    return line if len(line) <= 120 else line[:117] + "..."
