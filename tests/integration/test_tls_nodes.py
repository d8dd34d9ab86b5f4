"""A builder node on tcp:// with mutual TLS (#19): a real dockerd 20.10 behind `--tlsverify`
at tcp://10.77.0.4:2376, in a network namespace of the tests' own (tests/support/tcpnode.py),
with a CA, server and client certificates made by openssl here."""

import shutil

import pytest
import yaml

from tests.conftest import builders_of, docker, raw_manifest
from tests.integration.test_doctor import doctor, lines
from tests.support.tcpnode import HOST, TcpNode

pytestmark = pytest.mark.engine
SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


@pytest.fixture(scope="module")
def node(engine, tmp_path_factory):
    """The TLS node, up for the module; stopped, and its data root deleted, at the end."""
    tcp = TcpNode(tmp_path_factory.mktemp("tcp-node")).up()
    yield tcp
    tcp.down()


def tls_manifest(ws, node, cert, key) -> str:
    """An app for amd64 (built here) and arm64 (routed to the node); the three TLS files under
    names of the user's choosing, relative to multiarch.yaml. Returns the list's reference."""
    certs = ws.path / "certs"
    certs.mkdir(exist_ok=True)
    for source, name in ((node.certs.ca, "node-ca.crt"), (cert, "arm.crt"), (key, "arm.key")):
        shutil.copyfile(source, certs / name)
    ws.context("app", f'FROM busybox:1.35\nRUN echo {ws.namespace} > /id\nCMD ["uname", "-m"]\n')
    path = ws.manifest({"app": {"context": "app"}}, ["linux/amd64", "linux/arm64"])
    document = yaml.safe_load(path.read_text())
    document["builders"] = {"linux/arm64": {
        "docker_host": HOST,
        "tls": {"ca": "certs/node-ca.crt", "cert": "certs/arm.crt", "key": "certs/arm.key"}}}
    path.write_text(yaml.safe_dump(document))
    return f"localhost:5000/{ws.namespace}/app:latest"


def key_lines(key) -> list[str]:
    """The key's base64 body: what must never be printed or recorded."""
    return [line for line in key.read_text().splitlines() if line and "-----" not in line]


def test_arm64_builds_on_the_tls_node_and_the_list_runs(workspace, node):
    ws = workspace
    ref = tls_manifest(ws, node, node.certs.cert, node.certs.key)
    # A system CA bundle in the environment must not replace the node's CA (requests lets it).
    result = ws.doit("-n", "2", "build", env={"REQUESTS_CA_BUNDLE": SYSTEM_BUNDLE})
    cert_path = ws.path / ".multiarch" / "tls" / "tcp-10.77.0.4-2376"
    assert (f"[app linux/arm64] $ DOCKER_HOST={HOST} DOCKER_TLS_VERIFY=1 "
            f"DOCKER_CERT_PATH={cert_path} docker build") in result.stdout, result.stdout
    assert builders_of(ws, "app") == {"linux/amd64": "default", "linux/arm64": HOST}
    index = raw_manifest(ref)
    assert index is not None, result.stdout
    assert {m["platform"]["architecture"] for m in index["manifests"]
            if m["platform"]["os"] != "unknown"} == {"amd64", "arm64"}
    assert docker("run", "--rm", "--pull", "always", "--platform", "linux/arm64",
                  ref).split() == ["aarch64"]

    secret = key_lines(node.certs.key)
    assert not any(line in result.stdout + result.stderr for line in secret)
    for path in (ws.path / ".multiarch").rglob("*"):
        if path.is_file() and cert_path not in path.parents:
            data = path.read_bytes()
            assert not any(line.encode() in data for line in secret), path


def test_a_wrong_client_certificate_stops_the_run_before_any_build(workspace, node):
    ws = workspace
    ref = tls_manifest(ws, node, node.certs.stranger_cert, node.certs.stranger_key)
    result = ws.doit("-n", "2", "build", check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    refusal = [line for line in output.splitlines()
               if f"builder {HOST} (linux/arm64): it refused our client certificate" in line]
    assert refusal, output
    assert "$ docker build" not in output and "DOCKER_HOST=tcp://" not in output, output
    assert "bake" not in result.stdout, output
    assert raw_manifest(ref) is None, output


def test_the_doctor_says_which_node_answers_and_which_refuses_our_certificate(workspace, node):
    ws = workspace
    tls_manifest(ws, node, node.certs.cert, node.certs.key)
    assert lines(doctor(ws), "ok    builder for linux/arm64: ") == [
        f"ok    builder for linux/arm64: {HOST} answers"]
    tls_manifest(ws, node, node.certs.stranger_cert, node.certs.stranger_key)
    [line] = lines(doctor(ws), "error builder for linux/arm64: ")
    assert f"{HOST}: it refused our client certificate" in line, line
    assert "builders.linux/arm64.tls" in line, line
