"""A dockerd behind `--tlsverify` on tcp://10.77.0.4:2376, inside a network namespace (#19).

It is trixie's dockerd 26 (scripts/engine's stock engine), with its own data root, exec root
and pidfile, and a bridge of its own inside the namespace: a buildx builder puts a BuildKit
container on it, which bookworm's dockerd 20.10 cannot start here ("unable to apply caps").
bench/routed.py asks for that 20.10 (CLASSIC_DOCKERD), to compare like with the node engine.
The namespace cannot see this side's loopback, so relays carry its 127.0.0.1:5000 to the test
registry (see relay.py): busybox comes through `registry-mirrors` and localhost:5000 is
insecure by default.
"""

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import relay
from .netns import HOST_IP, RemoteHost, make_ca, sign_certificate

NAME, ADDRESS, PORT = "ma-tcp", "10.77.0.4", 2376
HOST = f"tcp://{ADDRESS}:{PORT}"
ENGINE_DIR = Path("/opt/multiarch-engine")
CONTAINERD = ENGINE_DIR / "root"
DOCKERD = CONTAINERD / "usr/sbin/dockerd"
CLASSIC_DOCKERD = ENGINE_DIR / "classic/usr/sbin/dockerd"  # bookworm's 20.10, as the node engine
DATA_ROOT, EXEC_ROOT = Path("/var/lib/multiarch-tcp-test"), Path("/run/multiarch-tcp-test")
INNER_BRIDGE, INNER_BRIDGE_ADDR = "ma-tcpbr0", "172.31.253.1/24"
REGISTRY = "127.0.0.1:5000"
# This side's end of the relay: a port of this node's own (other tests may relay 5000).
OUTER = f"{HOST_IP}:5004"
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Certificates:
    """What the test hands out: the node's CA, a client pair it signed, and one it did not."""

    ca: Path
    cert: Path
    key: Path
    stranger_cert: Path
    stranger_key: Path


def make_node_certificates(folder: Path) -> tuple[Certificates, tuple[Path, Path, Path]]:
    """(client side, (ca, server cert, server key)): a CA, a server certificate for ADDRESS,
    a client certificate, and a client certificate signed by another CA."""
    ca = make_ca(folder / "ca", "multiarch tcp node CA")
    server = sign_certificate(folder / "ca", ca, "server", ADDRESS, "serverAuth", ADDRESS)
    client = sign_certificate(folder / "ca", ca, "client", "multiarch client", "clientAuth")
    other = make_ca(folder / "other", "some other CA")
    stranger = sign_certificate(folder / "other", other, "client", "stranger", "clientAuth")
    return (Certificates(ca[0], client[0], client[1], stranger[0], stranger[1]),
            (ca[0], server[0], server[1]))


def cli_env(certs: Certificates) -> dict[str, str]:
    """The environment of the test's own docker commands on the node."""
    return {**os.environ, "DOCKER_HOST": HOST, "DOCKER_TLS_VERIFY": "1",
            "DOCKER_CERT_PATH": str(certs.ca.parent / "cli")}


def _answers(certs: Certificates) -> bool:
    env = cli_env(certs)
    return subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"],
                          capture_output=True, env=env, timeout=20).returncode == 0


def cli_folder(certs: Certificates) -> Path:
    """A DOCKER_CERT_PATH for the test's own docker commands."""
    folder = certs.ca.parent / "cli"
    folder.mkdir(exist_ok=True)
    for source, name in ((certs.ca, "ca.pem"), (certs.cert, "cert.pem"), (certs.key, "key.pem")):
        shutil.copyfile(source, folder / name)
    return folder


class TcpNode:
    """The namespace, its dockerd and the two relays; up() then down()."""

    def __init__(self, folder: Path, dockerd: Path = DOCKERD) -> None:
        self.folder = folder
        self.dockerd = dockerd
        self.host = RemoteHost(NAME, ADDRESS)
        self.outer: socket.socket | None = None
        self.certs, self.server = make_node_certificates(folder)
        cli_folder(self.certs)

    def up(self) -> "TcpNode":
        """Everything started, or (on any failure) everything stopped again."""
        try:
            return self._up()
        except BaseException:
            self.down()
            raise

    def _up(self) -> "TcpNode":
        self.down()
        self.host.up()
        self.outer = relay.start(OUTER, REGISTRY)
        self.host.start(sys.executable, str(ROOT / "tests/support/relay.py"), REGISTRY, OUTER,
                        log=self.folder / "relay.log")
        self.host.run("ip", "link", "add", INNER_BRIDGE, "type", "bridge")
        self.host.run("ip", "addr", "add", INNER_BRIDGE_ADDR, "dev", INNER_BRIDGE)
        self.host.run("ip", "link", "set", INNER_BRIDGE, "up")
        EXEC_ROOT.mkdir(parents=True, exist_ok=True)
        ca, cert, key = self.server
        config = self.folder / "daemon.json"
        config.write_text(json.dumps({
            "data-root": str(DATA_ROOT), "exec-root": str(EXEC_ROOT),
            "pidfile": str(EXEC_ROOT / "dockerd.pid"), "hosts": [f"tcp://{ADDRESS}:{PORT}"],
            "tls": True, "tlsverify": True, "tlscacert": str(ca), "tlscert": str(cert),
            "tlskey": str(key), "bridge": INNER_BRIDGE, "iptables": False,
            "registry-mirrors": [f"http://{REGISTRY}"]}))
        path = f"{self.dockerd.parent}:{CONTAINERD}/usr/bin:{os.environ['PATH']}"
        self._start_dockerd(config, path)
        deadline = time.monotonic() + 60
        while not _answers(self.certs):
            if time.monotonic() > deadline:
                log = (self.folder / "dockerd.log").read_text()[-2000:]
                raise RuntimeError(f"the tcp dockerd did not answer:\n{log}")
            time.sleep(0.5)
        return self

    def _start_dockerd(self, config: Path, path: str) -> None:
        """nsenter, not `ip netns exec`: that mounts a /sys of its own, which hides the
        cgroup hierarchy dockerd needs (`Devices cgroup isn't mounted`)."""
        with open(self.folder / "dockerd.log", "ab") as out:
            process = subprocess.Popen(
                ["nsenter", f"--net=/var/run/netns/{NAME}", "env", f"PATH={path}",
                 str(self.dockerd), "--config-file", str(config)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.host.processes.insert(0, process)  # stopped first, before the relays

    def down(self) -> None:
        """Stop the dockerd (its containerd with it), the relays and the namespace; delete the
        data root."""
        self.host.down()
        if self.outer is not None:
            with contextlib.suppress(OSError):
                self.outer.shutdown(socket.SHUT_RDWR)
            self.outer.close()
            self.outer = None
        pidfile = EXEC_ROOT / "dockerd.pid"
        if pidfile.exists():  # an interrupted run's dockerd, by its own pid only
            try:
                os.kill(int(pidfile.read_text().strip()), 15)
                time.sleep(2)
            except (ValueError, ProcessLookupError):
                pass
        subprocess.run(["umount", "-R", str(DATA_ROOT)], capture_output=True)
        shutil.rmtree(DATA_ROOT, ignore_errors=True)
        shutil.rmtree(EXEC_ROOT, ignore_errors=True)
