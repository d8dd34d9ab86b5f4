"""The Engine API over its unix socket without the SDK: one GET, `/info`, and its mirrors."""

import http.client
import json
import os
import socket

from ..errors import DockerError
from .client import engine

DEFAULT_HOST = "unix:///var/run/docker.sock"


def docker_host() -> str:
    return os.environ.get("DOCKER_HOST") or DEFAULT_HOST


def unix_get(host: str, path: str, timeout: float) -> tuple[int, bytes]:
    """(status, body) of one Engine API GET over a ``unix://`` socket, without the SDK.

    Raises OSError (no socket, refused, timed out) or http.client.HTTPException.
    """
    connection = http.client.HTTPConnection("localhost", timeout=timeout)
    try:
        connection.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.sock.settimeout(timeout)
        connection.sock.connect(host[len("unix://"):])
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def engine_info() -> dict:
    """`GET /info` of the engine ({} if it does not answer). Over a unix socket it is asked
    directly, so that a run which only checks tasks never loads the docker SDK."""
    host = docker_host()
    if host.startswith("unix://"):
        try:
            status, body = unix_get(host, "/info", timeout=10)
            return json.loads(body) if status == 200 else {}
        except (OSError, ValueError, http.client.HTTPException):
            return {}
    try:
        return engine().info()
    except (DockerError, OSError):
        return {}


def engine_mirrors() -> list[str]:
    """The engine's docker.io mirrors (`registry-mirrors`), as host[:port]; [] without one.

    `GET /info` is the only Engine API answer that holds them.
    """
    mirrors = (engine_info().get("RegistryConfig") or {}).get("Mirrors") or []
    return [mirror.split("://", 1)[-1].rstrip("/") for mirror in mirrors]
