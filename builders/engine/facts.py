"""What an engine and this host are: architecture, image store, QEMU handlers, insecure registries.

The doctor diagnoses these facts; builds ask them too (is this platform emulated here?), so they
live below both.
"""

import functools
import ipaddress
import platform as host_platform
import re
import socket
from pathlib import Path

from ...tasks.model.platforms import Platform
from ...tasks.model.routing import LOCAL, Node
from ..errors import DockerError
from .cli import child_env, run
from .client import cli_env, engine

BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
# Docker architecture -> the QEMU name its binfmt handler is registered under (qemu-<name>).
QEMU_NAMES = {
    "amd64": "x86_64", "386": "i386", "arm64": "aarch64", "arm": "arm", "ppc64le": "ppc64le",
    "ppc64": "ppc64", "s390x": "s390x", "riscv64": "riscv64", "mips64le": "mips64el",
    "mips64": "mips64", "mipsle": "mipsel", "mips": "mips", "loong64": "loongarch64",
}
# What a host of each architecture runs without emulation.
NATIVE = {"amd64": ("amd64", "386"), "arm64": ("arm64",)}
_MACHINE = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "i386": "386",
            "i686": "386", "armv7l": "arm", "ppc64el": "ppc64le", "loongarch64": "loong64"}
# The hosts the engine speaks plain HTTP to without being told (its isSecureIndex).
_LOOPBACK = re.compile(r"(localhost|127(\.\d+){3}|\[::1\])(:\d+)?")
INSECURE_HINT = (
    'the engine does not treat {host} as insecure: add "insecure-registries": ["{host}"] to '
    "/etc/docker/daemon.json and restart dockerd"
)


def host_arch(machine: str) -> str:
    """Docker's name for a kernel's machine name: x86_64 -> amd64, aarch64 -> arm64."""
    return _MACHINE.get(machine.lower(), machine.lower())


def handler_for(platform: Platform, arch: str) -> str | None:
    """The binfmt handler ``platform`` needs on a host of ``arch``; None when native."""
    if platform.architecture in NATIVE.get(arch, (arch,)):
        return None
    return f"qemu-{QEMU_NAMES.get(platform.architecture, platform.architecture)}"


def is_native(platform: Platform) -> bool:
    """True when this machine's CPU runs ``platform`` without QEMU."""
    return handler_for(platform, host_arch(host_platform.machine())) is None


def is_emulated(platform: Platform, arch: str) -> bool:
    """Whether building ``platform`` on an engine of ``arch`` goes through QEMU."""
    return handler_for(platform, arch) is not None


@functools.cache
def _engine_arch(docker_host: str | None, docker_context: str | None) -> str:
    try:
        answer = run(["docker", "version", "--format", "{{.Server.Arch}}"], "docker version",
                     echo=False, env={"DOCKER_HOST": docker_host,
                                      "DOCKER_CONTEXT": docker_context}).strip()
    except DockerError:
        answer = ""
    return host_arch(answer or host_platform.machine())


def engine_arch(node: Node = LOCAL) -> str:
    """The architecture of ``node``'s engine (amd64, arm64), asked once per process and
    engine, and only by a build that really runs (never on the no-op path)."""
    env = child_env(cli_env(node))
    return _engine_arch(env.get("DOCKER_HOST"), env.get("DOCKER_CONTEXT"))


def engine_facts() -> dict:
    """The environment's engine as the doctor and the preflight judge it; never raises."""
    try:
        client = engine()
        version, info = client.version(), client.info()
    except (DockerError, OSError) as err:
        return {"reachable": False, "error": str(err).splitlines()[0],
                "architecture": host_arch(host_platform.machine())}
    except Exception as err:  # docker.errors.APIError: the SDK is imported lazily
        return {"reachable": False, "error": f"engine API: {err}",
                "architecture": host_arch(host_platform.machine())}
    config = info.get("RegistryConfig") or {}
    return {
        "reachable": True,
        "version": info.get("ServerVersion") or version.get("Version", "?"),
        "api_version": version.get("ApiVersion", ""),
        "driver": info.get("Driver", ""),
        "containerd_store": uses_containerd_store(info.get("DriverStatus")),
        "architecture": host_arch(info.get("Architecture") or host_platform.machine()),
        "insecure_cidrs": list(config.get("InsecureRegistryCIDRs") or []),
        "index_configs": {name: {"Secure": entry.get("Secure", True)}
                          for name, entry in (config.get("IndexConfigs") or {}).items()},
        "mirrors": list(config.get("Mirrors") or []),
    }


def uses_containerd_store(driver_status) -> bool:
    """`docker info` DriverStatus names a containerd snapshotter with the containerd store."""
    return any("io.containerd.snapshotter" in str(value) for _, value in driver_status or [])


def binfmt_handlers(folder: Path = BINFMT_DIR) -> dict:
    """{handler name: enabled} for every qemu-* handler registered with the kernel."""
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return {}
    handlers = {}
    for entry in entries:
        if not entry.name.startswith("qemu-"):
            continue
        try:
            first = entry.read_text().split("\n", 1)[0].strip()
        except OSError:
            first = ""
        handlers[entry.name] = first == "enabled"
    return handlers


def addresses(host: str) -> list[str]:
    """The IP addresses a registry ``host`` (host[:port]) resolves to; [] when it does not."""
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.strip("[]")
    try:
        return sorted({info[4][0] for info in socket.getaddrinfo(name, None)})
    except OSError:
        return []


def is_loopback(host: str) -> bool:
    """``host`` (host[:port]) is this machine: localhost, 127.x.x.x or [::1]."""
    return bool(_LOOPBACK.fullmatch(host))


def engine_treats_insecure(host: str, registry: dict, engine: dict) -> bool:
    """The engine's isSecureIndex, inverted: loopback, `Secure: false`, or an insecure CIDR.

    ``registry`` holds the host's ``addresses``; ``engine`` is engine_facts().
    """
    if is_loopback(host):
        return True
    index = engine.get("index_configs", {}).get(host)
    if index is not None:
        return not index.get("Secure", True)
    networks = []
    for cidr in engine.get("insecure_cidrs", []):
        try:
            networks.append(ipaddress.ip_network(cidr, strict=False))
        except ValueError:
            continue
    for address in registry.get("addresses", []):
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            continue
        if any(ip in network for network in networks):
            return True
    return False


def insecure_hint(host: str) -> str:
    """What to do when the engine speaks HTTPS to ``host``, a plain-HTTP registry."""
    return INSECURE_HINT.format(host=host)
