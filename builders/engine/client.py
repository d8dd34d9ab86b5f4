"""How to reach an engine: a CLI subprocess's environment, and the one docker SDK client factory."""

import gc
import os
import re
from pathlib import Path
from types import ModuleType

from ...tasks.model.files import write_atomic
from ...tasks.model.routing import LOCAL, Node, NodeTLS
from ..errors import DockerError


def sdk() -> ModuleType:
    """The docker SDK module, imported on first use: task creation and a no-op run never load
    it. Every use of the SDK (clients, errors, `docker.auth`) goes through here."""
    import docker

    return docker




def cert_path(tls: NodeTLS) -> Path:
    """The node's DOCKER_CERT_PATH, filled: the CLI reads only `ca.pem`, `cert.pem` and
    `key.pem` there, while the manifest may name its files anything. Copied (not linked: a
    symlinked key keeps its own mode) on every call, so an edited certificate is used at once;
    each by write_atomic, so a parallel CLI never reads half a file. Every file is 0600 from
    its creation (a temporary file's mode), and the key's bytes are never printed."""
    tls.folder.mkdir(parents=True, exist_ok=True)
    os.chmod(tls.folder, 0o700)
    for source, name in ((tls.ca, "ca.pem"), (tls.cert, "cert.pem"), (tls.key, "key.pem")):
        write_atomic(tls.folder / name, source.read_text(errors="surrogateescape"), 0o600)
    return tls.folder


def cli_env(node: Node) -> dict[str, str | None]:
    """What a docker CLI subprocess needs to talk to ``node`` (None: unset the variable).

    A node with `tls:` gets DOCKER_TLS_VERIFY and DOCKER_CERT_PATH, as `docker-machine env`
    would give; without it both are unset, so the run's own never reach another node."""
    if node.docker_host:
        tls = ({"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(cert_path(node.tls))}
               if node.tls else {"DOCKER_TLS_VERIFY": None, "DOCKER_CERT_PATH": None})
        return {"DOCKER_HOST": node.docker_host, "DOCKER_CONTEXT": None, **tls}
    if node.context:
        return {"DOCKER_CONTEXT": node.context, "DOCKER_HOST": None}
    return {}


def reach(node: Node = LOCAL, timeout: float | None = None):
    """A docker SDK client for ``node`` that has answered a ping.

    A context is resolved to its endpoint and TLS here; ``ssh://`` goes through the system's
    ssh client, as the docker CLI does (the SDK still imports paramiko for it: `docker[ssh]`).

    Raises:
        DockerError: why the engine cannot be reached, in the OS's words (`Connection
        refused`), or that the context does not exist.
    """
    docker = sdk()
    import requests  # docker's own transport, loaded with it

    kwargs = {"timeout": timeout} if timeout else {}
    try:
        client = unpinged(docker, node, kwargs)
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException) as err:
        raise DockerError(short_reason(str(err)) or type(err).__name__) from None
    except OSError as err:
        raise DockerError(err.strerror or str(err) or type(err).__name__) from None
    return client


def unpinged(docker: ModuleType, node: Node, kwargs: dict):
    """The client reach() pings: no request is made yet. A TLS node's or a TLS context's
    server is checked against its own CA only (_pinned_client)."""
    if node.from_environment:
        return docker.from_env(**kwargs)
    if node.tls:
        return _tls_client(docker, node, kwargs)
    if node.docker_host:
        return docker.DockerClient(base_url=node.docker_host,
                                   use_ssh_client=node.docker_host.startswith("ssh://"),
                                   **kwargs)
    context = docker_context(node.context)
    if context.TLSConfig:
        return _pinned_client(docker, context.Host, context.TLSConfig, kwargs)
    return docker.DockerClient(base_url=context.Host,
                               use_ssh_client=context.Host.startswith("ssh://"), **kwargs)


def close(client) -> None:
    """Close ``client``'s connections. For an ssh:// engine each one is an `ssh` process that
    the SDK terminates but never waits for, and its socket holds itself in a reference cycle
    (its stdout file points back at it): a collection now reaps them, where otherwise they
    stay zombies until the run exits."""
    client.close()
    if str(getattr(client.api, "base_url", "")).startswith("http+docker://ssh"):
        gc.collect()


def docker_context(name: str):
    """The SDK's record of the docker context ``name``: its endpoint and TLS, read from the
    CLI's context store (no engine is asked).

    Raises:
        DockerError: there is no such context.
    """
    context = sdk().ContextAPI.get_context(name)
    if context is None:
        raise DockerError(f"no docker context {name!r} (see `docker context ls`)")
    return context


def _tls_client(docker: ModuleType, node: Node, kwargs: dict):
    """A client for a tcp:// node with mutual TLS, checked against the node's own CA."""
    tls = docker.tls.TLSConfig(client_cert=(str(node.tls.cert), str(node.tls.key)),
                               ca_cert=str(node.tls.ca), verify=True)
    return _pinned_client(docker, node.docker_host, tls, kwargs)


def _pinned_client(docker: ModuleType, base_url: str, tls, kwargs: dict):
    """A client whose server is checked against ``tls``'s CA and no other. requests lets
    REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE (often set system-wide) replace a session's CA per
    request, which would reject a private CA's server as `unable to get local issuer
    certificate`: the client's own CA is put back on each request."""

    class PinnedCA(docker.APIClient):
        def merge_environment_settings(self, url, proxies, stream, verify, cert):
            settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
            return {**settings, "verify": self.verify}

    client = docker.DockerClient.__new__(docker.DockerClient)
    client.api = PinnedCA(base_url=base_url, tls=tls, **kwargs)
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
