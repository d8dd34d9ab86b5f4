"""A builder node on tcp:// with mutual TLS (#19): a real dockerd behind `--tlsverify` at
tcp://10.77.0.4:2376, in a network namespace of the tests' own (tests/support/tcpnode.py),
with a CA, server and client certificates made by openssl here. Which node ran a buildx
build is read off that node's own BuildKit (`buildctl du`)."""

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

from tests.conftest import builders_of, docker, raw_manifest
from tests.integration.test_doctor import doctor, lines
from tests.support.netns import sign_certificate
from tests.support.tcpnode import HOST, TcpNode, cli_env

pytestmark = pytest.mark.engine
SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
BUILDER, CONTEXT = "multiarch-nodes", "multiarch-tcp-10.77.0.4-2376"
MIRROR = "127.0.0.1:5000"
BUILDX_DOCKERFILE = "FROM busybox:1.35\nRUN uname -m > /arch && echo {token}\n"


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


@pytest.fixture
def nodes_builder(node):
    """The buildx builder and the docker context a run makes, removed after the test."""
    yield BUILDER
    subprocess.run(["docker", "buildx", "rm", BUILDER], capture_output=True)
    subprocess.run(["docker", "context", "rm", "-f", CONTEXT], capture_output=True)


def executed_on_node(node, token: str) -> int:
    """How many builds the TLS node's own BuildKit ran that carry ``token`` (`buildctl du`)."""
    result = subprocess.run(["docker", "exec", f"buildx_buildkit_{BUILDER}1", "buildctl", "du",
                             "-v"], capture_output=True, text=True, env=cli_env(node.certs),
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return sum(token in line for line in result.stdout.splitlines() if "from exec" in line)


def test_a_buildx_builder_reaches_the_tls_node_through_a_docker_context(workspace, node,
                                                                      nodes_builder):
    ws = workspace
    ref = tls_manifest(ws, node, node.certs.cert, node.certs.key)
    tokens = [f"token-{uuid.uuid4().hex[:12]}" for _ in range(3)]
    context = ws.context("app", BUILDX_DOCKERFILE.format(token=tokens[0]))
    path = ws.path / "multiarch.yaml"
    document = yaml.safe_load(path.read_text())
    document.update(strategy="buildx",
                    registries={"docker.io": {"mirrors": [MIRROR]}, MIRROR: {"insecure": True},
                                "localhost:5000": {"insecure": True}})
    path.write_text(yaml.safe_dump(document))

    first = ws.doit("build")

    cert_path = ws.path / ".multiarch" / "tls" / "tcp-10.77.0.4-2376"
    assert (f"$ docker context create {CONTEXT} --description 'made by multiarch from "
            f"builders: with tls:' --docker host={HOST},ca={cert_path}/ca.pem,"
            f"cert={cert_path}/cert.pem,key={cert_path}/key.pem") in first.stdout, first.stdout
    assert (f"docker buildx create --append --name {BUILDER} --node {BUILDER}1 --driver "
            "docker-container --driver-opt network=host --platform linux/arm64 "
            f"--buildkitd-config {ws.path / '.multiarch' / 'buildkitd.toml'} {CONTEXT}"
            ) in first.stdout, first.stdout
    assert executed_on_node(node, tokens[0]) == 1  # arm64 only, and on the node
    assert builders_of(ws, "app") == {"linux/amd64": "default", "linux/arm64": HOST}
    index = raw_manifest(ref)
    assert {m["platform"]["architecture"] for m in index["manifests"]
            if m["platform"]["os"] != "unknown"} == {"amd64", "arm64"}
    assert docker("run", "--rm", "--pull", "always", "--platform", "linux/arm64",
                  ref, "cat", "/arch").split() == ["aarch64"]
    secret = key_lines(node.certs.key)
    assert not any(line in first.stdout + first.stderr for line in secret)

    # A renewed client certificate (the same CA) updates the context; the builder stays.
    ca_key = node.certs.ca.parent / "ca.key"
    renewed = sign_certificate(ca_key.parent, (node.certs.ca, ca_key), "renewed",
                               "multiarch client renewed", "clientAuth")
    shutil.copyfile(renewed[0], ws.path / "certs" / "arm.crt")
    shutil.copyfile(renewed[1], ws.path / "certs" / "arm.key")
    (context / "Dockerfile").write_text(BUILDX_DOCKERFILE.format(token=tokens[1]))

    second = ws.doit("build")

    assert f"$ docker context update {CONTEXT} --docker host={HOST}," in second.stdout
    assert "docker buildx create" not in second.stdout, second.stdout
    assert executed_on_node(node, tokens[1]) == 1
    stored = json.loads(subprocess.run(["docker", "context", "inspect", CONTEXT],
                                       capture_output=True, text=True, check=True).stdout)[0]
    tls_path = Path(stored["Storage"]["TLSPath"]) / "docker"
    assert (tls_path / "cert.pem").read_bytes() == renewed[0].read_bytes()
    assert not any(line in second.stdout + second.stderr for line in key_lines(renewed[1]))

    # Another change of the image, none of the node: neither the context nor the builder is
    # touched, and the build still goes to the node.
    (context / "Dockerfile").write_text(BUILDX_DOCKERFILE.format(token=tokens[2]))
    third = ws.doit("build")
    assert "docker context" not in third.stdout and "buildx create" not in third.stdout
    assert executed_on_node(node, tokens[2]) == 1
