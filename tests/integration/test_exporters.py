"""Exporters on the real engine, their artefacts read by docker load, tar and OCI digests."""

import hashlib
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.conftest import ROOT, Workspace, docker

PLATFORMS = ["linux/amd64", "linux/arm64"]
DOCKERFILE = "FROM busybox:1.35\nCOPY hello.txt /hello.txt\nRUN uname -m > /arch\n"
# Until dodo.py wires task_export, a dodo file of the workspace's own adds it; after, the
# same definition simply replaces the imported one.
DODO = f"""\
import sys
sys.path.insert(0, {str(ROOT)!r})
from dodo import *  # noqa: F403
from dodo import RUN
from multiarch.tasks.doit import exports


def task_export():
    yield from exports.export_tasks(RUN)
"""
OUTPUTS = [
    {"type": "docker", "dest": "out/demo-{arch}.tar"},
    {"type": "docker"},
    {"type": "oci", "dest": "out/demo-oci.tar"},
    {"type": "local", "dest": "out/rootfs-{platform}"},
    {"type": "tar", "dest": "out/rootfs.tar"},
    {"type": "cacheonly"},
]


def doit(workspace, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    dodo = workspace.path / "dodo_export.py"
    dodo.write_text(DODO)
    command, rest = (args[0], args[1:]) if args[0] in ("run", "clean", "list") else ("run", args)
    argv = [sys.executable, "-m", "doit", command, "-f", str(dodo), *rest,
            f"manifest={workspace.path / 'multiarch.yaml'}"]
    result = subprocess.run(argv, capture_output=True, text=True, cwd=workspace.path,
                            timeout=600)
    if check and result.returncode != 0:
        pytest.fail(f"doit {' '.join(args)} exited {result.returncode}:\n"
                    f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}", pytrace=False)
    return result


def ran(result) -> list[str]:
    return sorted(line.split()[1] for line in result.stdout.splitlines()
                  if line.startswith(".  export:"))


def demo(workspace, outputs: list[dict]) -> None:
    context = workspace.context("demo", DOCKERFILE)
    (context / "hello.txt").write_text("hello\n")
    workspace.manifest({"demo": {"context": "demo", "outputs": outputs}}, PLATFORMS)


@pytest.fixture(scope="module")
def shared(engine, tmp_path_factory) -> Workspace:
    """One workspace whose demo image of two platforms is exported every way, once."""
    workspace = Workspace(tmp_path_factory.mktemp("exporters"))
    demo(workspace, OUTPUTS)
    result = doit(workspace, "export")
    assert ran(result) == sorted([
        "export:demo:docker.1:linux/amd64", "export:demo:docker.1:linux/arm64",
        "export:demo:docker.2", "export:demo:oci", "export:demo:local:linux/amd64",
        "export:demo:local:linux/arm64", "export:demo:tar", "export:demo:cacheonly",
    ])
    yield workspace
    # Slow on the containerd store (~10 s), so once per module.
    subprocess.run(["docker", "image", "rm", f"localhost:5000/{workspace.namespace}/demo:latest",
                    f"localhost:5000/{workspace.namespace}/demo:latest-arm64"],
                   capture_output=True)


@pytest.fixture
def exported(shared) -> Path:
    return shared.path


def test_docker_tar_loads_and_runs_per_platform(exported, shared):
    assert not (exported / "out" / "demo-{arch}.tar").exists()
    loaded = docker("load", "-i", str(exported / "out" / "demo-arm64.tar"))
    ref = f"localhost:5000/{shared.namespace}/demo:latest-arm64"
    assert ref in loaded
    said = docker("run", "--rm", "--platform", "linux/arm64", ref, "cat", "/arch", "/hello.txt")
    assert said.split() == ["aarch64", "hello"]
    assert (exported / "out" / "demo-amd64.tar").stat().st_size > 0


def test_docker_without_dest_loads_every_platform(exported, shared):
    ref = f"localhost:5000/{shared.namespace}/demo:latest"
    for platform, machine in (("linux/amd64", "x86_64"), ("linux/arm64", "aarch64")):
        said = docker("run", "--rm", "--platform", platform, ref, "cat", "/arch")
        assert said.strip() == machine


def test_oci_layout_blobs_match_their_digests(exported, tmp_path):
    layout = tmp_path / "layout"
    with tarfile.open(exported / "out" / "demo-oci.tar") as archive:
        archive.extractall(layout, filter="data")
    assert json.loads((layout / "oci-layout").read_text())["imageLayoutVersion"] == "1.0.0"

    def blob(descriptor: dict) -> bytes:
        algorithm, hexdigest = descriptor["digest"].split(":")
        data = (layout / "blobs" / algorithm / hexdigest).read_bytes()
        assert hashlib.sha256(data).hexdigest() == hexdigest
        assert len(data) == descriptor["size"]
        return data

    platforms, layers = set(), 0
    pending = list(json.loads((layout / "index.json").read_text())["manifests"])
    while pending:
        descriptor = pending.pop()
        document = json.loads(blob(descriptor))
        if "manifests" in document:  # an index: the list, or buildx's nested one
            pending += document["manifests"]
            continue
        platform = descriptor.get("platform", {})
        if platform.get("architecture", "unknown") != "unknown":  # not an attestation
            platforms.add(f"{platform['os']}/{platform['architecture']}")
        blob(document["config"])
        for layer in document["layers"]:
            blob(layer)
            layers += 1
    assert platforms == set(PLATFORMS)
    assert layers >= 4
    for path in (layout / "blobs" / "sha256").iterdir():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name


def test_local_rootfs_per_platform(exported):
    arm64 = exported / "out" / "rootfs-linux_arm64"
    amd64 = exported / "out" / "rootfs-linux_amd64"
    assert (arm64 / "hello.txt").read_text() == "hello\n"
    assert (arm64 / "arch").read_text().strip() == "aarch64"
    assert (amd64 / "arch").read_text().strip() == "x86_64"
    assert (arm64 / "bin" / "busybox").exists()


def test_tar_holds_each_platforms_filesystem(exported):
    with tarfile.open(exported / "out" / "rootfs.tar") as archive:
        names = set(archive.getnames())
        arch = archive.extractfile("linux_arm64/arch").read().decode().strip()
    assert {"linux_amd64/hello.txt", "linux_arm64/hello.txt"} <= names
    assert arch == "aarch64"


def test_second_run_is_up_to_date_and_clean_removes_targets(workspace):
    demo(workspace, [{"type": "oci", "dest": "out/demo-oci.tar"},
                     {"type": "local", "dest": "out/rootfs-{platform}"},
                     {"type": "cacheonly"}])
    out = workspace.path / "out"
    assert len(ran(doit(workspace, "export"))) == 4
    assert sorted(p.name for p in out.iterdir()) == [
        "demo-oci.tar", "rootfs-linux_amd64", "rootfs-linux_arm64"]
    again = doit(workspace, "export")
    assert ran(again) == []
    assert "-- export:demo:oci" in again.stdout

    doit(workspace, "clean", "export:demo:local:linux/arm64", "export:demo:oci")
    assert not (out / "rootfs-linux_arm64").exists()
    assert not (out / "demo-oci.tar").exists()
    assert (out / "rootfs-linux_amd64" / "hello.txt").exists()
    assert ran(doit(workspace, "export")) == ["export:demo:local:linux/arm64", "export:demo:oci"]

    (workspace.path / "demo" / "hello.txt").write_text("changed\n")
    assert len(ran(doit(workspace, "export"))) == 4
    assert (out / "rootfs-linux_arm64" / "hello.txt").read_text() == "changed\n"


def test_docker_tar_of_several_platforms_needs_a_placeholder(workspace):
    demo(workspace, [{"type": "docker", "dest": "out/demo.tar"}])
    result = doit(workspace, "export", check=False)
    assert result.returncode != 0
    assert ("multiarch.yaml: images.demo.outputs[0].dest: type docker writes one file per "
            "platform; put {arch} or {platform} in 'out/demo.tar'") in result.stderr  # at load
    assert not (workspace.path / "out").exists()
