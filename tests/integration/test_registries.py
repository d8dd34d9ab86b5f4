"""Self-hosted registries at a non-loopback address: plain HTTP, and TLS with a private CA and
htpasswd auth, in a network namespace of the tests' own (tests/support/netns.py)."""

import json
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from tests.conftest import CLASSIC, ROOT, docker, require_classic
from tests.support.netns import RemoteHost, htpasswd_file, make_certificates, start_registry

PLATFORMS = ["linux/amd64", "linux/arm64"]
USER, PASSWORD = "builder", "s3cret-Pa55-never-printed"


@pytest.fixture(scope="module")
def remote(engine, tmp_path_factory):
    host = RemoteHost().up()
    folder = tmp_path_factory.mktemp("remote")
    yield host, folder
    host.down()


@pytest.fixture(scope="module")
def http_registry(remote) -> str:
    host, folder = remote
    return start_registry(host, folder, 5000)


@pytest.fixture(scope="module")
def tls_registry(remote):
    """A TLS registry signed by a CA of our own, with basic auth; the engine and the docker CLI
    trust the CA through /etc/docker/certs.d, as `docker login` to it requires."""
    host, folder = remote
    ca, key, cert = make_certificates(folder)
    htpasswd = htpasswd_file(folder, USER, PASSWORD)
    address = start_registry(host, folder, 5443, tls=(cert, key), htpasswd=htpasswd)
    certs_d = Path("/etc/docker/certs.d") / address
    certs_d.mkdir(parents=True, exist_ok=True)
    shutil.copy(ca, certs_d / "ca.crt")
    subprocess.run(["docker", "login", address, "-u", USER, "--password-stdin"], input=PASSWORD,
                   text=True, check=True, capture_output=True)
    yield address, ca
    subprocess.run(["docker", "logout", address], capture_output=True)
    shutil.rmtree(certs_d, ignore_errors=True)


def demo(workspace, repository: str, registries: dict) -> Path:
    shutil.copytree(ROOT / "examples" / "demo", workspace.path / "demo")
    path = workspace.manifest({"demo": {"context": "demo", "tags": ["v1"],
                                        "repository": repository}}, PLATFORMS)
    document = yaml.safe_load(path.read_text())
    document["registries"] = registries
    path.write_text(yaml.safe_dump(document))
    return path


def listed(ref: str, *flags: str) -> set[str]:
    raw = subprocess.run(["skopeo", "inspect", "--raw", *flags, f"docker://{ref}"],
                         capture_output=True, text=True, check=True).stdout
    index = json.loads(raw)
    return {f"{m['platform']['os']}/{m['platform']['architecture']}" for m in index["manifests"]}


def test_plain_http_registry_declared_insecure(workspace, http_registry):
    repository = f"{http_registry}/{workspace.namespace}/demo"
    demo(workspace, repository, {http_registry: {"insecure": True}})

    workspace.doit("build")

    assert listed(f"{repository}:v1", "--tls-verify=false") == set(PLATFORMS)
    workspace.doit("buildkitd")
    written = tomllib.loads((workspace.path / ".multiarch" / "buildkitd.toml").read_text())
    assert written == {"registry": {http_registry: {"http": True, "insecure": True}}}


def test_an_engine_without_the_setting_stops_before_building(workspace, http_registry):
    require_classic()
    repository = f"{http_registry}/{workspace.namespace}/demo"
    demo(workspace, repository, {http_registry: {"insecure": True}})

    result = workspace.doit("build", docker_host=CLASSIC, check=False)

    said = result.stdout + result.stderr
    assert result.returncode != 0
    assert f'add "insecure-registries": ["{http_registry}"] to /etc/docker/daemon.json' in said
    assert "$ docker build" not in said and "Traceback" not in said


def test_a_registry_that_is_down_stops_the_run_before_building(workspace, remote):
    repository = f"10.77.0.2:5999/{workspace.namespace}/demo"
    demo(workspace, repository, {"10.77.0.2:5999": {"insecure": True}})

    result = workspace.doit("build", check=False)

    said = result.stdout + result.stderr
    assert result.returncode != 0
    assert ("GET http://10.77.0.2:5999/v2/: registry 10.77.0.2:5999 refused the connection "
            "(4 attempts)") in said
    assert "$ docker build" not in said


def test_tls_registry_with_a_private_ca_and_credentials(workspace, tls_registry):
    address, ca = tls_registry
    (workspace.path / "certs").mkdir()
    shutil.copy(ca, workspace.path / "certs" / "corp-ca.pem")
    repository = f"{address}/{workspace.namespace}/demo"
    demo(workspace, repository, {address: {"ca": "certs/corp-ca.pem"}})

    built = workspace.doit("build")
    workspace.doit("buildkitd")

    assert listed(f"{repository}:v1", "--tls-verify=false",
                  f"--creds={USER}:{PASSWORD}") == set(PLATFORMS)
    again = workspace.doit("build")  # verified against the registry, with the credentials
    assert [line for line in again.stdout.splitlines() if line.startswith(".  ")
            and not line.startswith(".  registries")] == []
    written = tomllib.loads((workspace.path / ".multiarch" / "buildkitd.toml").read_text())
    assert written == {"registry": {address: {
        "ca": [str(workspace.path / "certs" / "corp-ca.pem")]}}}
    for text in (built.stdout, built.stderr, again.stdout, again.stderr):
        assert PASSWORD not in text
    for path in (workspace.path / ".multiarch").rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path


def test_buildx_accepts_the_generated_buildkitd_toml(workspace, http_registry):
    demo(workspace, f"{http_registry}/{workspace.namespace}/demo",
         {http_registry: {"insecure": True}, "docker.io": {"mirrors": [http_registry]}})
    workspace.doit("buildkitd")
    config = workspace.path / ".multiarch" / "buildkitd.toml"
    name = f"ma-{workspace.namespace}"

    docker("buildx", "create", "--name", name, "--driver", "docker-container",
           "--buildkitd-config", str(config))
    try:
        assert name in docker("buildx", "ls")
    finally:
        docker("buildx", "rm", name)


def test_refused_credentials_stop_the_run_before_building(workspace, tls_registry):
    address, ca = tls_registry
    (workspace.path / "certs").mkdir()
    shutil.copy(ca, workspace.path / "certs" / "corp-ca.pem")
    demo(workspace, f"{address}/{workspace.namespace}/demo", {address: {"ca": "certs/corp-ca.pem"}})
    subprocess.run(["docker", "logout", address], check=True, capture_output=True)
    try:
        result = workspace.doit("build", check=False)
    finally:
        subprocess.run(["docker", "login", address, "-u", USER, "--password-stdin"],
                       input=PASSWORD, text=True, check=True, capture_output=True)

    said = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"registry {address} refuses the credentials of `docker login {address}`" in said
    assert "$ docker build" not in said
