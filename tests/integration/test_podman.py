"""`engine: podman` on bookworm's Podman 4.3: the demo end to end, no-ops, one change, a failed
platform, self-hosted registries (plain HTTP, and TLS with a private CA and `podman login`), and
the same lists as Docker's. Results are read by skopeo and `podman run`, not by multiarch."""

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, builders_of, raw_manifest
from tests.support import nodes
from tests.support.netns import RemoteHost, htpasswd_file, make_certificates, start_registry

PLATFORMS = ["linux/amd64", "linux/arm64"]
UNAMES = {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}
USER, PASSWORD = "builder", "podman-Pa55-never-printed"
FAILS_ON_ARM = 'FROM busybox:1.35\nRUN [ "$(uname -m)" != aarch64 ]\n'


def podman_manifest(workspace, images: dict, **top) -> Path:
    """The workspace's manifest with `engine: podman` and ``top``'s keys."""
    path = workspace.manifest(images, PLATFORMS)
    document = yaml.safe_load(path.read_text())
    document.update({"engine": "podman", **top})
    path.write_text(yaml.safe_dump(document))
    return path


def with_demo(workspace, repository: str | None = None, **top) -> str:
    """The seed's demo under `engine: podman`; its list's reference."""
    shutil.copytree(ROOT / "examples" / "demo", workspace.path / "demo")
    repository = repository or f"localhost:5000/{workspace.namespace}/demo"
    podman_manifest(workspace, {"demo": {"context": "demo", "tags": ["v1"],
                                         "repository": repository}}, **top)
    return f"{repository}:v1"


def platforms_of(index: dict) -> set[str]:
    return {f"{m['platform']['os']}/{m['platform']['architecture']}" for m in index["manifests"]}


def podman_run(ref: str, platform: str, *flags: str) -> str:
    result = subprocess.run(["podman", "run", "--rm", "--pull=always", "--tls-verify=false",
                             *flags, "--platform", platform, ref],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_demo_end_to_end_then_no_op_then_one_change(workspace, podman):
    ref = with_demo(workspace)
    workspace.context("other", "FROM busybox:1.35\nCOPY note /note\n")
    (workspace.path / "other" / "note").write_text("one\n")
    document = yaml.safe_load((workspace.path / "multiarch.yaml").read_text())
    document["images"]["other"] = {"context": "other",
                                   "repository": f"{workspace.namespace}/other"}
    (workspace.path / "multiarch.yaml").write_text(yaml.safe_dump(document))

    first = workspace.doit("build")

    assert first.stdout.count("$ podman build --pull=always --platform") == 4
    assert "$ docker" not in first.stdout.replace("$ docker buildx imagetools create", "")
    index = raw_manifest(ref)
    assert index["mediaType"] == "application/vnd.docker.distribution.manifest.list.v2+json"
    assert platforms_of(index) == set(PLATFORMS)
    for platform in PLATFORMS:
        assert podman_run(ref, platform) == f"Hello from {UNAMES[platform]}"

    again = workspace.doit("build")

    assert "$ podman" not in again.stdout
    assert raw_manifest(ref) == index

    (workspace.path / "other" / "note").write_text("two\n")
    changed = workspace.doit("build")

    built = [line for line in changed.stdout.splitlines() if "$ podman build" in line]
    assert len(built) == 2 and all(line.startswith("[other ") for line in built)
    assert raw_manifest(ref) == index


def test_a_failing_platform_leaves_the_published_list_untouched(workspace, podman):
    context = workspace.context("app", "FROM busybox:1.35\nRUN uname -m > /arch\n")
    podman_manifest(workspace, {"app": {"context": "app", "tags": ["v1"]}})
    ref = f"localhost:5000/{workspace.namespace}/app:v1"
    workspace.doit("build")
    published, amd64 = raw_manifest(ref), raw_manifest(f"{ref}-amd64")

    (context / "Dockerfile").write_text(FAILS_ON_ARM)
    result = workspace.doit("build", check=False)

    assert result.returncode != 0
    assert "podman build app for linux/arm64 failed" in result.stdout + result.stderr
    assert raw_manifest(ref) == published
    assert raw_manifest(f"{ref}-amd64") not in (None, amd64)  # its sibling was pushed anew


def test_docker_and_podman_give_lists_of_the_same_platforms(workspace, podman):
    ref = with_demo(workspace)
    workspace.doit("build")
    path = workspace.path / "multiarch.yaml"
    document = yaml.safe_load(path.read_text())
    del document["engine"]
    document["images"]["demo"]["repository"] = f"{workspace.namespace}/with-docker"
    path.write_text(yaml.safe_dump(document))

    workspace.doit("build")

    by_docker = raw_manifest(f"localhost:5000/{workspace.namespace}/with-docker:v1")
    assert platforms_of(by_docker) == platforms_of(raw_manifest(ref)) == set(PLATFORMS)


def test_podman_is_chosen_when_no_docker_engine_answers(workspace, podman):
    with_demo(workspace)
    path = workspace.path / "multiarch.yaml"
    document = yaml.safe_load(path.read_text())
    del document["engine"]
    path.write_text(yaml.safe_dump(document))

    result = workspace.doit("build", docker_host="unix:///run/multiarch-nowhere.sock")

    assert "no Docker engine answers" in result.stderr
    assert "building with podman, as `engine: podman`" in result.stderr
    assert result.stdout.count("$ podman build") == 2


def test_doctor_reports_podman(workspace, podman):
    with_demo(workspace)

    said = workspace.doit("doctor").stdout

    version = subprocess.run(["podman", "version", "--format", "{{.Client.Version}}"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert f"ok    engine: Podman {version} (storage driver overlay) on linux/amd64" in said
    assert "ok    platform linux/arm64: via QEMU (binfmt handler qemu-aarch64)" in said
    assert "podman is given --tls-verify=false (loopback)" in said
    assert "buildx" not in said


@pytest.fixture(scope="module")
def remote(engine, tmp_path_factory):
    host = RemoteHost().up()
    yield host, tmp_path_factory.mktemp("remote")
    host.down()


def test_plain_http_registry_declared_insecure(workspace, podman, remote):
    address = start_registry(*remote, 5000)
    ref = with_demo(workspace, repository=f"{address}/{workspace.namespace}/demo",
                    registries={address: {"insecure": True}})

    result = workspace.doit("build")

    assert result.stdout.count("--tls-verify=false") >= 4  # every push to it says so
    assert platforms_of(raw_manifest(ref)) == set(PLATFORMS)
    assert podman_run(ref, "linux/arm64") == "Hello from aarch64"


def test_tls_registry_with_a_private_ca_and_podman_login(workspace, podman, remote):
    host, folder = remote
    ca, key, cert = make_certificates(folder, "multiarch podman test CA")
    htpasswd = htpasswd_file(folder, USER, PASSWORD)
    address = start_registry(host, folder, 5443, tls=(cert, key), htpasswd=htpasswd)
    certs = folder / "podman-certs"
    certs.mkdir()
    shutil.copy(ca, certs / "ca.crt")
    auth = folder / "auth.json"
    subprocess.run(["podman", "login", "--authfile", str(auth), "--cert-dir", str(certs),
                    "-u", USER, "--password-stdin", address], input=PASSWORD, text=True,
                   check=True, capture_output=True)
    shutil.copy(ca, workspace.path / "ca.pem")
    ref = with_demo(workspace, repository=f"{address}/{workspace.namespace}/demo",
                    registries={address: {"ca": "ca.pem"}})
    env = {"REGISTRY_AUTH_FILE": str(auth)}

    result = workspace.doit("build", env=env)

    assert "--cert-dir" in result.stdout and "--tls-verify=false" not in result.stdout
    inspected = subprocess.run(["skopeo", "inspect", "--raw", "--authfile", str(auth),
                                "--cert-dir", str(certs), f"docker://{ref}"],
                               capture_output=True, text=True, check=True).stdout
    assert platforms_of(yaml.safe_load(inspected)) == set(PLATFORMS)
    written = [path.read_bytes() for path in (workspace.path / ".multiarch").rglob("*")
               if path.is_file()]
    assert PASSWORD not in result.stdout + result.stderr
    assert not any(PASSWORD.encode() in content for content in written)



def on_node(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", "--connection", nodes.PODMAN_NODE, *args],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def podman_node(podman):
    """The Podman node scripts/engine starts, answering; started again after a test stops it."""
    if on_node("info").returncode != 0:
        nodes.start(podman=True)
    yield nodes.PODMAN_NODE
    if on_node("info").returncode != 0:
        nodes.start(podman=True)


def test_a_platform_routed_to_a_podman_connection_builds_there(workspace, podman_node):
    ref = with_demo(workspace, builders={"linux/arm64": {"connection": podman_node}})

    result = workspace.doit("build")

    assert f"$ podman --connection {podman_node} build --pull=always --platform linux/arm64" \
        in result.stdout
    assert "$ podman build --pull=always --platform linux/amd64" in result.stdout
    assert builders_of(workspace, "demo") == {"linux/amd64": "default",
                                              "linux/arm64": podman_node}
    arm64 = (workspace.path / ".multiarch" / "iid" / "demo-arm64").read_text().strip()
    assert on_node("image", "exists", arm64).returncode == 0
    assert on_node("image", "exists", f"{ref}-arm64").returncode == 0
    assert subprocess.run(["podman", "image", "exists", f"{ref}-arm64"]).returncode != 0
    assert podman_run(ref, "linux/arm64") == "Hello from aarch64"


def test_a_stopped_podman_node_fails_fast_or_falls_back(workspace, podman_node):
    ref = with_demo(workspace, builders={"linux/arm64": {"connection": podman_node,
                                                         "emulate": False}})
    nodes.stop(pidfile=nodes.PODMAN_PIDFILE)

    refused = workspace.doit("build", check=False)

    said = refused.stdout + refused.stderr
    assert refused.returncode != 0
    assert (f"linux/arm64: builder {podman_node} is unreachable" in said
            and "emulate: false forbids a local QEMU build" in said)
    assert "--platform linux/arm64" not in said and raw_manifest(ref) is None

    path = workspace.path / "multiarch.yaml"
    document = yaml.safe_load(path.read_text())
    del document["builders"]["linux/arm64"]["emulate"]
    path.write_text(yaml.safe_dump(document))
    fallen_back = workspace.doit("build")

    assert f"builder {podman_node} unreachable" in fallen_back.stdout
    assert "building locally under QEMU" in fallen_back.stdout
    assert podman_run(ref, "linux/arm64") == "Hello from aarch64"
