"""A "remote" host for tests: a network namespace joined to this one by a veth pair.

Docker trusts only 127.0.0.0/8 as insecure by default, so a loopback registry proves nothing
about self-hosted registries. Tests that need one at a real, non-loopback address run it here,
at 10.77.0.2 (this side: 10.77.0.1, on the bridge every such namespace's veth joins); another
host gets its own name and address (10.77.0.3, ...). Only addresses inside the namespaces that
this helper made are ever used.
"""

import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

NAMESPACE = "ma-remote"
BRIDGE = "ma-remote0"
HOST_IP, REMOTE_IP = "10.77.0.1", "10.77.0.2"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def _bridge() -> None:
    """This side's end of every remote host: a bridge holding HOST_IP, made once."""
    if _ip("link", "show", BRIDGE, check=False).returncode == 0:
        return
    _ip("link", "add", BRIDGE, "type", "bridge")
    _ip("addr", "add", f"{HOST_IP}/24", "dev", BRIDGE)
    _ip("link", "set", BRIDGE, "up")


class RemoteHost:
    """The namespace, its veth pair, and the processes started inside it."""

    def __init__(self, name: str = NAMESPACE, address: str = REMOTE_IP) -> None:
        self.name, self.address = name, address
        suffix = address.rsplit(".", 1)[1]
        self.host_side, self.remote_side = f"ma-veth{suffix}-h", f"ma-veth{suffix}-r"
        self.processes: list[subprocess.Popen] = []

    def up(self) -> "RemoteHost":
        self.down()  # whatever an interrupted run left behind
        _bridge()
        _ip("netns", "add", self.name)
        _ip("link", "add", self.host_side, "type", "veth", "peer", "name", self.remote_side)
        _ip("link", "set", self.remote_side, "netns", self.name)
        _ip("link", "set", self.host_side, "master", BRIDGE)
        _ip("link", "set", self.host_side, "up")
        self.run("ip", "addr", "add", f"{self.address}/24", "dev", self.remote_side)
        self.run("ip", "link", "set", self.remote_side, "up")
        self.run("ip", "link", "set", "lo", "up")
        return self

    def run(self, *argv: str) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.name, *argv], capture_output=True,
                              text=True, check=True)

    def start(self, *argv: str, log: Path) -> subprocess.Popen:
        with open(log, "ab") as out:
            process = subprocess.Popen(["ip", "netns", "exec", self.name, *argv], stdout=out,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.processes.append(process)
        return process

    def down(self) -> None:
        for process in self.processes:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        self.processes.clear()
        _ip("netns", "del", self.name, check=False)
        _ip("link", "del", self.host_side, check=False)


def start_registry(host: RemoteHost, folder: Path, port: int, tls: tuple[Path, Path] | None = None,
                   htpasswd: Path | None = None) -> str:
    """Run docker-registry inside the namespace on ``port``; return its host:port once it answers.

    ``tls`` is (certificate, key); ``htpasswd`` a bcrypt htpasswd file for basic auth.
    """
    lines = ["version: 0.1", "log:", "  level: warn", "storage:", "  inmemory: {}",
             "http:", f"  addr: {host.address}:{port}"]
    if tls:
        lines += ["  tls:", f"    certificate: {tls[0]}", f"    key: {tls[1]}"]
    if htpasswd:
        lines += ["auth:", "  htpasswd:", "    realm: multiarch-tests", f"    path: {htpasswd}"]
    config = folder / f"registry-{port}.yml"
    config.write_text("\n".join(lines) + "\n")
    host.start("docker-registry", "serve", str(config), log=folder / f"registry-{port}.log")
    address = f"{host.address}:{port}"
    scheme = "https" if tls else "http"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            context = ssl._create_unverified_context() if tls else None
            urllib.request.urlopen(f"{scheme}://{address}/v2/", timeout=2, context=context)
            return address
        except urllib.error.HTTPError as err:
            if err.code == 401:
                return address
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the registry at {address} did not answer; see {folder}")


def make_ca(folder: Path, common_name: str = "multiarch test CA") -> tuple[Path, Path]:
    """(ca certificate, ca key): a CA of our own, in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    ca, ca_key = folder / "ca.pem", folder / "ca.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", f"/CN={common_name}", "-keyout", ca_key, "-out", ca],
                   check=True, capture_output=True)
    return ca, ca_key


def sign_certificate(folder: Path, ca: tuple[Path, Path], name: str, common_name: str,
                     usage: str = "serverAuth", address: str | None = None) -> tuple[Path, Path]:
    """(certificate, key) ``name``.pem / ``name``.key signed by ``ca``, for ``usage``
    (serverAuth, clientAuth) and, for a server, an IP SAN: what a dockerd's --tlsverify
    checks on both ends."""
    key, csr, cert, extensions = (folder / f"{name}.{ext}" for ext in ("key", "csr", "pem", "cnf"))
    subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj",
                    f"/CN={common_name}", "-keyout", key, "-out", csr],
                   check=True, capture_output=True)
    lines = [f"extendedKeyUsage={usage}"] + ([f"subjectAltName=IP:{address}"] if address else [])
    extensions.write_text("\n".join(lines) + "\n")
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1],
                    "-CAcreateserial", "-days", "2", "-extfile", extensions, "-out", cert],
                   check=True, capture_output=True)
    return cert, key


def make_certificates(folder: Path, common_name: str = "multiarch test CA",
                      address: str = REMOTE_IP) -> tuple[Path, ...]:
    """(ca, key, certificate): a CA of our own and a server certificate it signed for
    ``address``."""
    ca = make_ca(folder, common_name)
    cert, key = sign_certificate(folder, ca, "tls", address, address=address)
    return ca[0], key, cert


def htpasswd_file(folder: Path, user: str, password: str) -> Path:
    """A bcrypt htpasswd file for the registry's basic auth."""
    path = folder / "htpasswd"
    path.write_text(subprocess.run(["htpasswd", "-Bbn", user, password], check=True,
                                   capture_output=True, text=True).stdout)
    return path
