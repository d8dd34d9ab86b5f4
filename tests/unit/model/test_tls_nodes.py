"""`tls: {ca, cert, key}` on a tcp:// builder node (#19): parsing, the CLI's DOCKER_CERT_PATH,
and what a refused handshake means. No engine: the live handshake is in
tests/integration/test_tls_nodes.py."""

import os
import stat
import subprocess
from pathlib import Path

import pytest
from multiarch.builders.checks import doctor, preflight
from multiarch.builders.engine import contexts, nodes
from multiarch.builders.engine.client import _tls_client, cert_path, cli_env, sdk, unpinged
from multiarch.builders.errors import DockerError
from multiarch.tasks.model.errors import ManifestError
from multiarch.tasks.model.manifest import parse_manifest
from multiarch.tasks.model.platforms import Platform
from multiarch.tasks.model.routing import Node, NodeTLS, Routing

from tests.support.netns import make_ca, sign_certificate

ARM64 = Platform("linux", "arm64")
HOST = "tcp://10.77.0.4:2376"
TLS = {"ca": "certs/ca.crt", "cert": "certs/client.crt", "key": "certs/client.key"}
SECRET = "-----BEGIN PRIVATE KEY-----\nnot really a key\n-----END PRIVATE KEY-----\n"


def manifest(tmp_path: Path, node: dict):
    (tmp_path / "app").mkdir(exist_ok=True)
    (tmp_path / "app" / "Dockerfile").write_text("FROM busybox:1.35\n")
    document = {"version": 1, "platforms": ["linux/amd64", "linux/arm64"],
                "images": {"app": {"context": "app"}}, "builders": {"linux/arm64": node}}
    return parse_manifest(document, tmp_path / "multiarch.yaml", "multiarch.yaml")


@pytest.fixture
def certs(tmp_path) -> Path:
    folder = tmp_path / "certs"
    folder.mkdir()
    (folder / "ca.crt").write_text("ca\n")
    (folder / "client.crt").write_text("cert\n")
    (folder / "client.key").write_text(SECRET)
    return folder


def test_tls_paths_are_relative_to_the_manifest_and_the_cert_path_is_under_the_state_dir(
        tmp_path, certs):
    node = manifest(tmp_path, {"docker_host": HOST, "tls": TLS}).routing.node_for(ARM64)
    assert node.name == HOST
    assert node.tls == NodeTLS(certs / "ca.crt", certs / "client.crt", certs / "client.key",
                               tmp_path / ".multiarch" / "tls" / "tcp-10.77.0.4-2376")


@pytest.mark.parametrize(("node", "expected"), [
    ({"docker_host": "unix:///run/x.sock", "tls": TLS},
     "builders.linux/arm64.tls: tls needs a tcp:// docker_host"),
    ({"context": "arm", "tls": TLS}, "builders.linux/arm64.tls: tls needs a tcp:// docker_host"),
    ({"docker_host": HOST, "tls": {**TLS, "cert": "certs/nope.pem"}},
     "builders.linux/arm64.tls.cert: no such file: "),
    ({"docker_host": HOST, "tls": {"ca": TLS["ca"], "cert": TLS["cert"]}},
     "builders.linux/arm64.tls.key: missing"),
    ({"docker_host": HOST, "tls": {**TLS, "verify": True}},
     "builders.linux/arm64.tls.verify: unknown key 'verify'"),
    ({"docker_host": HOST, "tls": "certs"},
     "builders.linux/arm64.tls: expected a mapping, got a str"),
])
def test_bad_tls_is_a_one_line_error_naming_the_key(tmp_path, certs, node, expected):
    with pytest.raises(ManifestError) as caught:
        manifest(tmp_path, node)
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)


def test_the_cli_gets_a_cert_path_with_the_three_names_it_reads_and_a_private_key(
        tmp_path, certs):
    node = manifest(tmp_path, {"docker_host": HOST, "tls": TLS}).routing.node_for(ARM64)
    env = cli_env(node)
    folder = node.tls.folder
    assert env == {"DOCKER_HOST": HOST, "DOCKER_CONTEXT": None, "DOCKER_TLS_VERIFY": "1",
                   "DOCKER_CERT_PATH": str(folder)}
    assert sorted(p.name for p in folder.iterdir()) == ["ca.pem", "cert.pem", "key.pem"]
    assert (folder / "key.pem").read_text() == SECRET
    assert stat.S_IMODE((folder / "key.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    (certs / "client.crt").write_text("renewed\n")  # an edited certificate is used at once
    assert (cert_path(node.tls) / "cert.pem").read_text() == "renewed\n"


@pytest.mark.parametrize(("reason", "expected"), [
    ("[SSL: SSLV3_ALERT_BAD_CERTIFICATE] sslv3 alert bad certificate (_ssl.c:2580)",
     "it refused our client certificate (tls.cert, tls.key): signed by another CA? "
     "(sslv3 alert bad certificate)"),
    ("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local issuer "
     "certificate (_ssl.c:1006)", "its server certificate does not verify against tls.ca"),
    ('Error while fetching server API version: 400 Client Error for http://10.77.0.4:2376/'
     'version: Bad Request ("Client sen...', "it speaks TLS: give the node tls:"),
    ("Connection refused", None),
    ("timed out", None),
    (None, None),
])
def test_a_tls_refusal_is_told_apart_from_a_node_that_is_down(reason, expected):
    refusal = nodes.tls_refusal(reason)
    assert refusal == expected if expected is None else expected in refusal


@pytest.fixture
def refusing(monkeypatch):
    """Every ping answers as a node that rejects our client certificate."""
    nodes._down.clear()
    monkeypatch.setattr(nodes, "ping", lambda node, timeout=0: "[SSL: SSLV3_ALERT_BAD_"
                        "CERTIFICATE] sslv3 alert bad certificate (_ssl.c:2580)")
    yield
    nodes._down.clear()


def test_a_refused_certificate_is_never_hidden_by_the_qemu_fallback(refusing):
    node = Node(docker_host=HOST)  # emulate: true
    with pytest.raises(DockerError) as caught:
        nodes.choose(Routing(((ARM64, node),)), ARM64)
    assert str(caught.value).startswith(f"linux/arm64: builder {HOST}: it refused our client")


def test_the_preflight_stops_on_a_refused_certificate_naming_the_node(tmp_path, certs,
                                                                     refusing, monkeypatch):
    parsed = manifest(tmp_path, {"docker_host": HOST, "tls": TLS})
    monkeypatch.setattr(preflight, "registry_hosts", lambda manifest: [])
    with pytest.raises(DockerError) as caught:
        preflight.preflight(parsed)
    assert str(caught.value) == (f"builder {HOST} (linux/arm64): it refused our client "
                                 "certificate (tls.cert, tls.key): signed by another CA? "
                                 "(sslv3 alert bad certificate)")


def test_the_preflight_leaves_nodes_that_are_down_to_the_fallback(tmp_path, certs, monkeypatch):
    nodes._down.clear()
    monkeypatch.setattr(nodes, "ping", lambda node, timeout=0: "Connection refused")
    monkeypatch.setattr(preflight, "registry_hosts", lambda manifest: [])
    preflight.preflight(manifest(tmp_path, {"docker_host": HOST, "tls": TLS}))
    nodes._down.clear()


def test_the_doctor_calls_a_refused_certificate_an_error_not_a_fallback():
    finding = doctor.node_finding("linux/arm64", {
        "builder": HOST, "emulate": True,
        "unreachable": "[SSL: SSLV3_ALERT_BAD_CERTIFICATE] sslv3 alert bad certificate"})
    assert finding.level == "error"
    assert finding.message.startswith(f"{HOST}: it refused our client certificate")
    assert "builders.linux/arm64.tls" in finding.fix


def test_the_sdk_checks_the_node_against_its_own_ca_whatever_requests_ca_bundle_says(
        tmp_path, certs, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    monkeypatch.setenv("CURL_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    node = manifest(tmp_path, {"docker_host": HOST, "tls": TLS}).routing.node_for(ARM64)
    client = _tls_client(sdk(), node, {"version": "1.41"})  # a version: no request made
    settings = client.api.merge_environment_settings("https://10.77.0.4:2376/_ping", {}, None,
                                                     None, None)
    assert settings["verify"] == str(certs / "ca.crt")
    assert client.api.cert == (str(certs / "client.crt"), str(certs / "client.key"))


def stored_context(folder: Path, host: str = HOST) -> dict:
    """What `docker context inspect` reports, with its TLS files in ``folder``/docker."""
    return {"Endpoints": {"docker": {"Host": host, "SkipTLSVerify": False}},
            "Storage": {"TLSPath": str(folder)}}


def test_a_buildx_context_matches_only_the_same_host_and_the_same_three_files(tmp_path,
                                                                               certs):
    node = manifest(tmp_path, {"docker_host": HOST, "tls": TLS}).routing.node_for(ARM64)
    ours = cert_path(node.tls)
    assert contexts.context_name(node) == "multiarch-tcp-10.77.0.4-2376"
    assert contexts.docker_endpoint(node, ours) == (
        f"host={HOST},ca={ours}/ca.pem,cert={ours}/cert.pem,key={ours}/key.pem")
    stored = tmp_path / "cli-store"
    (stored / "docker").mkdir(parents=True)
    for name in contexts.FILES:
        (stored / "docker" / name).write_bytes((ours / name).read_bytes())
    assert contexts.matches(stored_context(stored), HOST, ours)
    assert not contexts.matches(stored_context(stored, "tcp://10.77.0.5:2376"), HOST, ours)
    (certs / "client.crt").write_text("renewed\n")
    assert not contexts.matches(stored_context(stored), HOST, cert_path(node.tls))
    (stored / "docker" / "cert.pem").write_text("renewed\n")
    assert contexts.matches(stored_context(stored), HOST, ours)
    (stored / "docker" / "key.pem").unlink()
    assert not contexts.matches(stored_context(stored), HOST, ours)


def test_a_comma_in_the_state_folder_is_refused_in_one_line_naming_the_node(tmp_path):
    node = Node(docker_host=HOST)
    with pytest.raises(DockerError, match=r"^builder tcp://10\.77\.0\.4:2376: the state folder"):
        contexts.docker_endpoint(node, tmp_path / "a,b")


def test_a_tls_context_s_server_is_checked_against_the_context_s_own_ca(tmp_path,
                                                                         monkeypatch):
    (tmp_path / "config.json").write_text("{}")  # else the SDK reads ~/.docker's contexts
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    ca = make_ca(tmp_path / "ca")
    cert, key = sign_certificate(tmp_path / "ca", ca, "client", "client", "clientAuth")
    subprocess.run(["docker", "context", "create", "arm-tls", "--docker",
                    f"host={HOST},ca={ca[0]},cert={cert},key={key}"],
                   check=True, capture_output=True, env={**os.environ})
    docker = sdk()
    client = unpinged(docker, Node(context="arm-tls"), {"version": "1.41"})
    settings = client.api.merge_environment_settings("https://10.77.0.4:2376/_ping", {}, None,
                                                     None, None)
    stored = Path(docker.ContextAPI.get_context("arm-tls").TLSConfig.ca_cert)
    assert tmp_path / "contexts" in stored.parents
    assert stored.read_bytes() == ca[0].read_bytes()
    assert settings["verify"] == str(stored)
