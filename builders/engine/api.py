"""The Engine API over its unix socket without the SDK, and which dockerd answers there."""

import http.client
import json
import os
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

from ..errors import DockerError
from .client import engine

DEFAULT_HOST = "unix:///var/run/docker.sock"
DEFAULT_CONFIG = "/etc/docker/daemon.json"  # dockerd's --config-file when run as root
# The sockets systemd's docker.socket listens on for a `dockerd -H fd://`, and its pidfile.
_ACTIVATED_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock")
_DEFAULT_PIDFILE = "/var/run/docker.pid"
_PEERCRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


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


@dataclass(frozen=True)
class EngineProcess:
    """The dockerd behind a local socket: which process it is, and the config file it reads."""

    pid: int
    started: int  # clock ticks after boot: a later process on the same pid differs
    config: Path  # as this process reaches it: through /proc/<pid>/root or cwd

    def state(self) -> list | None:
        """The process and its config file's stat (an absent file too: dockerd starts without
        one); None once the process is gone or the file cannot be looked at."""
        try:
            if _start_time(self.pid) != self.started:
                return None
        except (OSError, ValueError, IndexError):
            return None
        try:
            found = self.config.stat()
            stat = [found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns,
                    found.st_ctime_ns]
        except FileNotFoundError:
            stat = None
        except (OSError, ValueError):
            return None
        return [self.pid, self.started, str(self.config), stat]


def engine_process(host: str) -> EngineProcess | None:
    """The dockerd serving ``host`` (a ``unix://`` socket on this machine), or None when that
    cannot be told: another kind of host, a process in another pid namespace, a proxy (Docker
    Desktop), or a rootless dockerd without `--config-file`.

    The socket's peer is the process that listens on it: dockerd itself, or systemd when
    docker.socket activates a `dockerd -H fd://`, which is then found by its pidfile.
    """
    if not host.startswith("unix://"):
        return None
    path = host[len("unix://"):]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            sock.connect(path)
            pid = _PEERCRED.unpack(sock.getsockopt(
                socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))[0]
        if pid > 0 and _command(pid) == "systemd" and path in _ACTIVATED_SOCKETS:
            pid = int(Path(_DEFAULT_PIDFILE).read_text().strip())
            if not any(arg.startswith(b"fd://") or arg.endswith(b"=fd://")
                       for arg in _argv(pid)):
                return None
        if pid <= 0 or _command(pid) != "dockerd":
            return None
        config = config_file(pid, _argv(pid))
        return EngineProcess(pid, _start_time(pid), config) if config else None
    except (OSError, ValueError, IndexError):
        return None


def _command(pid: int) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()


def _argv(pid: int) -> list[bytes]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")


def _start_time(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])


def config_file(pid: int, argv: list[bytes]) -> Path | None:
    """dockerd's `--config-file` (default /etc/docker/daemon.json for root; a rootless one's
    default depends on its environment, so none), as this process reaches it."""
    named = None
    for index, arg in enumerate(argv):
        if arg == b"--config-file" and index + 1 < len(argv):
            named = argv[index + 1]
        elif arg.startswith(b"--config-file="):
            named = arg.partition(b"=")[2]
    if named is None:
        if Path(f"/proc/{pid}").stat().st_uid != 0:
            return None
        named = DEFAULT_CONFIG.encode()
    name = os.fsdecode(named)
    if os.path.isabs(name):
        return Path(f"/proc/{pid}/root") / name.lstrip("/")
    return Path(f"/proc/{pid}/cwd") / name
