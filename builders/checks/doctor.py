"""`doit doctor`: can this machine build the manifest? Engine, builder, QEMU and registries.

The facts come from builders.engine.facts (and here the builder's and registries' own); this
module decides what they mean for a manifest and says so, one line per subject.
"""

import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass

from ...tasks.model.engines import PODMAN
from ...tasks.model.manifest import Manifest
from ...tasks.model.platforms import Platform
from ..engine import podman
from ..engine.cli import run, say
from ..engine.facts import (
    BINFMT_DIR,
    addresses,
    binfmt_handlers,
    engine_facts,
    engine_treats_insecure,
    handler_for,
    is_loopback,
)
from ..engine.family import family
from ..engine.nodes import ping, tls_refusal
from ..errors import DockerError
from ..registry.client import Registry
from ..stages import buildx
from .preflight import registry_hosts

BINFMT_FIX = ("docker run --privileged --rm tonistiigi/binfmt --install {arch}, "
              "or install Debian's qemu-user-static package")
# Drivers that build several platforms at once; `docker` does only with the containerd store.
MULTI_PLATFORM_DRIVERS = ("docker-container", "kubernetes", "remote")
TIMEOUT = 5


@dataclass(frozen=True)
class Finding:
    """One line of the report: ``level`` is "ok", "warn" or "error"."""

    level: str
    subject: str
    message: str
    fix: str | None = None


# --- facts: the only part that does I/O -------------------------------------------------


def gather(manifest: Manifest) -> dict:
    """Everything diagnose() decides on, as a JSON-friendly dict; never raises."""
    with_podman = family(manifest.engine) == PODMAN
    engine = podman.facts() if with_podman else engine_facts()
    return {
        "engine": engine,
        "builder": {} if with_podman else builder_facts(manifest.builder),
        "binfmt": binfmt_handlers(),
        "registries": {host: registry_facts(host) for host in registry_hosts(manifest)},
        "nodes": node_facts(manifest),
    }


def node_facts(manifest: Manifest) -> dict:
    """{platform: {builder, emulate, unreachable}} for each platform `builders:` routes."""
    return {str(platform): {"builder": node.name, "emulate": node.emulate,
                            "unreachable": ping(node)}
            for platform, node in manifest.routing.routes}


def builder_facts(builder: str | None) -> dict:
    argv = ["docker", "buildx", "inspect"]
    if builder and builder != "auto":
        argv.append(builder)
    try:
        output = run(argv, "docker buildx inspect", echo=False)
    except DockerError as err:
        said = (err.output.strip().splitlines() or [err.message])[-1]
        return {"name": builder or "default", "error": said}
    return parse_buildx_inspect(output)


def parse_buildx_inspect(output: str) -> dict:
    """Name, Driver and the first node's Platforms out of `docker buildx inspect`."""
    fields: dict[str, str] = {}
    for line in output.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in ("Name", "Driver", "Platforms"):
            fields.setdefault(key.strip(), value.strip())
    platforms = [p.strip() for p in fields.get("Platforms", "").split(",") if p.strip()]
    return {"name": fields.get("Name", "default"), "driver": fields.get("Driver", ""),
            "platforms": platforms}


def registry_facts(host: str) -> dict:
    """Does ``host`` answer GET /v2/, over which scheme, and which addresses it resolves to."""
    facts = {"addresses": addresses(host), "answers": False, "scheme": None, "error": None}
    schemes = (True,) if is_loopback(host) else (False, True)  # HTTPS first, then HTTP
    for insecure in schemes:
        url = f"{Registry(host, insecure).base_url}/v2/"
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
                status = response.status
        except urllib.error.HTTPError as err:
            status = err.code
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            facts["error"] = str(reason)
            if isinstance(reason, ssl.SSLCertVerificationError):
                facts["scheme"] = "https-untrusted"
                return facts
            continue
        if status in (200, 401):
            facts.update(answers=True, scheme="http" if insecure else "https", error=None)
            return facts
        facts["error"] = f"GET {url}: {status}"
    return facts


# --- decisions: pure --------------------------------------------------------------------


def diagnose(facts: dict, manifest: Manifest) -> list[Finding]:
    """What the facts mean for this manifest, one Finding per subject."""
    engine = facts["engine"]
    findings = [_engine_finding(engine)]
    if engine.get("family") != PODMAN:
        findings += _builder_findings(facts["builder"], engine, manifest)
    arch = engine.get("architecture", "amd64")
    for platform in _platforms(manifest):
        findings.append(platform_finding(platform, arch, facts["binfmt"]))
    for host, registry in facts["registries"].items():
        if engine.get("family") == PODMAN:
            findings.append(podman_registry_finding(host, registry, manifest))
        else:
            findings.append(registry_finding(host, registry, engine))
    for platform, node in facts.get("nodes", {}).items():
        findings.append(node_finding(platform, node))
    return findings


def node_finding(platform: str, node: dict) -> Finding:
    """A routed platform's engine: answering, or what the build will do without it."""
    subject = f"builder for {platform}"
    if node["unreachable"] is None:
        return Finding("ok", subject, f"{node['builder']} answers")
    refusal = tls_refusal(node["unreachable"])
    if refusal is not None:  # never a fallback: the run stops in its preflight
        return Finding("error", subject, f"{node['builder']}: {refusal}",
                       f"check builders.{platform}.tls; the run stops before any build")
    if not node["emulate"]:
        return Finding("error", subject, f"{node['builder']} is unreachable "
                       f"({node['unreachable']}); emulate: false forbids a local QEMU build",
                       "start that engine, or allow the fallback with emulate: true")
    return Finding("warn", subject, f"{node['builder']} is unreachable ({node['unreachable']}); "
                   "its builds will run on the default engine under QEMU")


def _platforms(manifest: Manifest) -> list[Platform]:
    return list(dict.fromkeys(p for image in manifest.images for p in image.platforms))


def _engine_finding(engine: dict) -> Finding:
    if engine.get("family") == PODMAN:
        if not engine.get("reachable"):
            return Finding("error", "engine", engine.get("error", "unreachable"),
                           "install podman (Debian: apt-get install podman), or set "
                           "engine: docker")
        return Finding("ok", "engine", f"Podman {engine['version']} (storage driver "
                       f"{engine['driver']}) on linux/{engine['architecture']}")
    if not engine.get("reachable"):
        return Finding("error", "engine", engine.get("error", "unreachable"),
                       "start dockerd, or point DOCKER_HOST at a running engine")
    store = ("containerd image store" if engine["containerd_store"]
             else f"classic image store, {engine['driver']}")
    return Finding("ok", "engine",
                   f"Docker {engine['version']} ({store}) on linux/{engine['architecture']}")


def can_build_several(builder: dict, engine: dict) -> bool:
    driver = builder.get("driver", "")
    if driver == "docker":
        return bool(engine.get("containerd_store"))
    return driver in MULTI_PLATFORM_DRIVERS


def _builder_findings(builder: dict, engine: dict, manifest: Manifest) -> list[Finding]:
    subject = f"builder {builder.get('name', 'default')}"
    buildx_images = [i for i in manifest.images if i.method.strategy == "buildx"]
    if "error" in builder:
        level = "error" if buildx_images else "warn"
        return [Finding(level, subject, f"docker buildx inspect failed: {builder['error']}",
                        "install the buildx plugin, or create the builder with `docker buildx "
                        "create --name NAME --driver docker-container`")]
    several = can_build_several(builder, engine)
    what = "can" if several else "cannot"
    found = [Finding("ok", subject, f"driver {builder['driver']}, {what} build several "
                     f"platforms at once; lists {', '.join(builder['platforms']) or 'none yet'}")]
    if several or not engine.get("reachable"):
        return found
    for image in buildx_images:
        where = f"image {image.name}"
        if image.method.fallback == "manifest":
            found.append(Finding("warn", where, f"strategy buildx: the {builder['driver']} "
                                 "driver cannot build several platforms; falls back to the "
                                 "manifest strategy"))
        elif manifest.builder == "auto":
            found.append(Finding("ok", where, "strategy buildx with builder: auto"))
        else:
            found.append(Finding("error", where, f"strategy buildx: the builder "
                                 f"{builder['name']} ({builder['driver']} driver) cannot build "
                                 "several platforms at once", buildx.ADVICE))
    return found


def platform_finding(platform: Platform, arch: str, binfmt: dict) -> Finding:
    subject = f"platform {platform}"
    handler = handler_for(platform, arch)
    if handler is None:
        return Finding("ok", subject, f"native on this linux/{arch} host")
    fix = BINFMT_FIX.format(arch=platform.architecture)
    enabled = binfmt.get(handler, binfmt.get(f"{handler}-static"))
    if enabled:
        return Finding("ok", subject, f"via QEMU (binfmt handler {handler})")
    if enabled is False:
        return Finding("error", subject, f"binfmt handler {handler} is disabled",
                       f"echo 1 > {BINFMT_DIR / handler}, or {fix}")
    if arch == "arm64" and platform.architecture == "arm":
        return Finding("warn", subject, f"no binfmt handler {handler}: runs only if this "
                       "CPU has AArch32", fix)
    return Finding("error", subject, f"no binfmt handler {handler}", fix)


def _untrusted_or_down(subject: str, registry: dict, insecure: bool, treated: str,
                       trust_fix: str) -> Finding | None:
    """The registry's own problems, whichever engine: a certificate nobody trusts (fine when
    ``insecure``, as ``treated`` says), or no answer at all; None when it answers."""
    if registry.get("scheme") == "https-untrusted":
        if insecure:
            return Finding("ok", subject, "answers over HTTPS with an untrusted certificate; "
                           f"{treated}")
        return Finding("error", subject, f"TLS certificate not trusted: {registry['error']}",
                       trust_fix)
    if not registry.get("answers"):
        return Finding("error", subject, f"does not answer GET /v2/: {registry.get('error')}",
                       "start the registry, or check the repository's host")
    return None


def registry_finding(host: str, registry: dict, engine: dict) -> Finding:
    subject = f"registry {host}"
    insecure = engine.get("reachable") and engine_treats_insecure(host, registry, engine)
    daemon_line = f'add "insecure-registries": ["{host}"] to /etc/docker/daemon.json'
    found = _untrusted_or_down(subject, registry, insecure, "the engine treats it as insecure",
                               f"put its CA in /etc/docker/certs.d/{host}/ca.crt, or "
                               f"{daemon_line}")
    if found:
        return found
    scheme = registry["scheme"].upper()
    if not engine.get("reachable"):
        return Finding("ok", subject, f"answers over {scheme}")
    why = "loopback" if is_loopback(host) else "daemon.json"
    if insecure:
        return Finding("ok", subject, f"answers over {scheme}; the engine treats it as "
                       f"insecure ({why})")
    if scheme == "HTTP":
        return Finding("error", subject, "answers over plain HTTP but the engine treats it as "
                       "secure (HTTPS only)", f"{daemon_line} and restart dockerd")
    return Finding("ok", subject, "answers over HTTPS")


def podman_registry_finding(host: str, registry: dict, manifest: Manifest) -> Finding:
    """A registry as podman will reach it: each command is told `--tls-verify=false` for a
    loopback or `insecure: true` host, so the manifest decides, not a daemon."""
    subject = f"registry {host}"
    told = is_loopback(host) or host in manifest.insecure_hosts
    found = _untrusted_or_down(subject, registry, told, "podman is given --tls-verify=false",
                               f"name its CA with ca: under registries.{host}, or set "
                               "insecure: true")
    if found:
        return found
    scheme = registry["scheme"].upper()
    if told:
        why = "loopback" if is_loopback(host) else "insecure: true"
        return Finding("ok", subject, f"answers over {scheme}; podman is given "
                       f"--tls-verify=false ({why})")
    if scheme == "HTTP":
        return Finding("error", subject, "answers over plain HTTP, and podman speaks HTTPS to "
                       "it", f"set insecure: true under registries.{host}")
    return Finding("ok", subject, "answers over HTTPS")


# --- the task ---------------------------------------------------------------------------


def report(findings: list[Finding]) -> list[str]:
    """`ok    engine: Docker 26.1.5 (...)`, one line per finding, the fix after `; fix:`."""
    lines = []
    for finding in findings:
        line = f"{finding.level:<6}{finding.subject}: {finding.message}"
        if finding.fix and finding.level != "ok":
            line += f"; fix: {finding.fix}"
        lines.append(line)
    return lines


def doctor(manifest: Manifest) -> dict:
    """Print the report; return the facts, or raise DockerError when the manifest cannot build.

    Raises:
        DockerError: naming how many problems (the lines marked `error`) stand in the way.
    """
    facts = gather(manifest)
    findings = diagnose(facts, manifest)
    for line in report(findings):
        say(line)
    errors = [finding for finding in findings if finding.level == "error"]
    if errors:
        subjects = ", ".join(finding.subject for finding in errors)
        raise DockerError(f"doctor: {len(errors)} problem(s) stop {manifest.path.name} from "
                          f"building here: {subjects}")
    return facts
