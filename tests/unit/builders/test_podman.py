"""engine: podman without Podman: its command lines, TLS flags, auth files and doctor lines."""

import base64
import json
from dataclasses import replace
from pathlib import Path

from multiarch.builders.checks import doctor
from multiarch.builders.engine.podman import tls_flags
from multiarch.builders.registry.client import credentials, podman_auth_files
from multiarch.builders.stages import podman
from multiarch.tasks.model.dockerfile import Pull
from multiarch.tasks.model.manifest import Image, parse_manifest
from multiarch.tasks.model.methods import Method
from multiarch.tasks.model.platforms import parse_platform
from multiarch.tasks.model.registries import RegistrySettings
from multiarch.tasks.model.routing import Node

AMD64, ARM64 = parse_platform("linux/amd64"), parse_platform("linux/arm64")
CTX = Path("/src/demo")
IID = Path("/state/iid/demo-arm64")
IMAGE = Image(name="demo", context=CTX, dockerfile=CTX / "Dockerfile",
              repository="localhost:5000/demo", tags=("v1",), platforms=(AMD64, ARM64))
SECRET = "podman-auth-never-printed"


def pulling(image: Image, *refs: str) -> Image:
    """``image`` whose arm64 build pulls ``refs``."""
    pulls = tuple(Pull(ref, ARM64, "0", 1, "FROM") for ref in refs)
    return replace(image, pulls=((ARM64, pulls),))


def test_build_argv_is_docker_build_s_in_podman_s_words():
    image = replace(pulling(IMAGE, "busybox:1.35"), build_args=(("VERSION", "1.2"),),
                    target="final", method=Method(secrets=(("token", Path("/run/token")),)))
    assert podman.build_argv(image, ARM64, IID) == [
        "podman", "build", "--pull=always", "--platform", "linux/arm64",
        "-f", "/src/demo/Dockerfile", "--format", "docker",
        "--build-arg", "VERSION=1.2", "--target", "final",
        "--secret", "id=token,src=/run/token",
        "--iidfile", str(IID), "-t", "localhost:5000/demo:v1-arm64", "/src/demo"]


def test_a_base_from_a_loopback_or_insecure_registry_turns_tls_verification_off():
    from_loopback = pulling(IMAGE, "localhost:5000/base:v1")
    assert "--tls-verify=false" in podman.build_argv(from_loopback, ARM64, IID)
    insecure = (RegistrySettings("10.0.0.5:5000", insecure=True),)
    from_remote = pulling(IMAGE, "10.0.0.5:5000/base:v1", "docker.io/library/busybox:1.35")
    assert podman.build_argv(from_remote, ARM64, IID, registries=insecure).count(
        "--tls-verify=false") == 1
    assert "--tls-verify=false" not in podman.build_argv(pulling(IMAGE, "busybox"), ARM64, IID)


def test_a_private_ca_becomes_a_cert_dir_holding_it(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    registries = (RegistrySettings("reg.example:5443", ca=ca),)
    flags = tls_flags("reg.example:5443", registries, tmp_path / "state")
    assert flags == ["--cert-dir", str(tmp_path / "state" / "certs" / "reg.example_5443")]
    assert (Path(flags[1]) / "ca.crt").read_text() == ca.read_text()
    assert tls_flags("other.example", registries, tmp_path / "state") == []


def test_push_argv_pushes_the_image_by_id_in_docker_s_format(tmp_path):
    digestfile = tmp_path / "pushed"
    assert podman.push_argv("sha256:" + "a" * 64, "localhost:5000/demo:v1-arm64",
                            digestfile) == [
        "podman", "push", "--format", "v2s2", "--digestfile", str(digestfile),
        "--tls-verify=false", "sha256:" + "a" * 64, "docker://localhost:5000/demo:v1-arm64"]


def test_a_node_is_named_by_its_connection():
    node = Node(connection="arm-node")
    assert podman.build_argv(IMAGE, ARM64, IID, node)[:4] == [
        "podman", "--connection", "arm-node", "build"]


def test_podman_login_s_auth_file_is_read_when_docker_has_no_credentials(tmp_path,
                                                                          monkeypatch):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-docker-config"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    auth = tmp_path / "auth.json"
    token = base64.b64encode(f"ci:{SECRET}".encode()).decode()
    auth.write_text(json.dumps({"auths": {"reg.example:5443": {"auth": token}}}))
    assert credentials("reg.example:5443") is None
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(auth))
    assert podman_auth_files() == [str(auth)]
    assert credentials("reg.example:5443") == ("ci", SECRET)
    assert credentials("other.example") is None


def test_the_runtime_auth_file_comes_before_the_config_s(tmp_path, monkeypatch):
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    runtime = tmp_path / "runtime" / "containers" / "auth.json"
    config = tmp_path / "home" / ".config" / "containers" / "auth.json"
    for path in (config, runtime):
        path.parent.mkdir(parents=True)
        path.write_text("{}")
    assert podman_auth_files() == [str(runtime), str(config)]


def podman_facts(**registries) -> dict:
    engine = {"reachable": True, "family": "podman", "version": "4.3.1", "driver": "overlay",
              "architecture": "amd64"}
    return {"engine": engine, "builder": {}, "binfmt": {"qemu-aarch64": True},
            "registries": registries, "nodes": {}}


def test_the_doctor_judges_registries_by_the_manifest_not_a_daemon(tmp_path):
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "Dockerfile").write_text("FROM busybox:1.35\n")
    manifest = parse_manifest({"version": 1, "engine": "podman", "platforms": ["linux/arm64"],
                               "registries": {"10.0.0.5:5000": {"insecure": True}},
                               "images": {"app": {"context": "app"}}},
                              tmp_path / "multiarch.yaml", "multiarch.yaml")
    http = {"answers": True, "scheme": "http", "addresses": []}
    lines = doctor.report(doctor.diagnose(podman_facts(**{
        "10.0.0.5:5000": http, "10.0.0.6:5000": http}), manifest))
    assert lines == [
        "ok    engine: Podman 4.3.1 (storage driver overlay) on linux/amd64",
        "ok    platform linux/arm64: via QEMU (binfmt handler qemu-aarch64)",
        "ok    registry 10.0.0.5:5000: answers over HTTP; podman is given --tls-verify=false "
        "(insecure: true)",
        "error registry 10.0.0.6:5000: answers over plain HTTP, and podman speaks HTTPS to it; "
        "fix: set insecure: true under registries.10.0.0.6:5000",
    ]
    missing = {**podman_facts(), "engine": {"reachable": False, "family": "podman",
                                            "error": "podman is not installed (no podman on "
                                                     "PATH)", "architecture": "amd64"}}
    assert doctor.report(doctor.diagnose(missing, manifest))[0] == (
        "error engine: podman is not installed (no podman on PATH); fix: install podman "
        "(Debian: apt-get install podman), or set engine: docker")
