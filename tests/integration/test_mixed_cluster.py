"""examples/mixed-cluster: amd64, arm64 and loong64 nodes behind one tag, each child run by
`docker run --platform` and pulled and run by containerd's `ctr` for its platform, as a node's
kubelet would; `loongarch64` (what `uname -m` prints) is taken as loong64."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, docker, raw_manifest, skip_or_fail

ENGINE_DIR = Path(os.environ.get("MULTIARCH_ENGINE_DIR", "/opt/multiarch-engine"))
CTR = ENGINE_DIR / "root" / "usr" / "bin" / "ctr"
# The containerd dockerd runs for its containerd image store.
CONTAINERD = "/var/run/docker/containerd/containerd.sock"
MACHINES = {"linux/amd64": "x86_64", "linux/arm64": "aarch64", "linux/loong64": "loongarch64"}


@pytest.fixture
def ctr(workspace):
    """`ctr` against the engine's containerd, in a namespace of this test's own."""
    missing = None if CTR.exists() and Path(CONTAINERD).exists() else \
        f"no ctr at {CTR} or no containerd at {CONTAINERD}"
    skip_or_fail(missing)
    namespace = workspace.namespace

    def run(*args: str) -> str:
        result = subprocess.run([str(CTR), "-a", CONTAINERD, "-n", namespace, *args],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        return result.stdout

    yield run
    listed = subprocess.run([str(CTR), "-a", CONTAINERD, "-n", namespace, "images", "ls", "-q"],
                            capture_output=True, text=True).stdout.split()
    if listed:
        subprocess.run([str(CTR), "-a", CONTAINERD, "-n", namespace, "images", "rm", *listed],
                       capture_output=True)


def test_a_mixed_cluster_gets_one_tag_for_x86_arm_and_loongarch(workspace, ctr):
    shutil.copytree(ROOT / "examples" / "mixed-cluster", workspace.path, dirs_exist_ok=True)
    path = workspace.path / "multiarch.yaml"
    document = yaml.safe_load(path.read_text())
    document["platforms"] = ["linux/amd64", "linux/aarch64", "linux/loongarch64"]
    document["images"]["node-agent"]["repository"] = f"{workspace.namespace}/node-agent"
    path.write_text(yaml.safe_dump(document))

    workspace.doit("build")

    ref = f"localhost:5000/{workspace.namespace}/node-agent:v1"
    index = raw_manifest(ref)
    assert {f"{m['platform']['os']}/{m['platform']['architecture']}"
            for m in index["manifests"]} == set(MACHINES)
    for platform, machine in MACHINES.items():
        said = docker("run", "--rm", "--pull", "always", "--platform", platform, ref)
        assert said.strip() == f"node-agent for {machine}"
        pulled = ctr("images", "pull", "--plain-http", "--platform", platform, ref)
        assert f"unpacking {platform} " in pulled
        ran = ctr("run", "--rm", "--platform", platform, ref, f"agent-{machine}")
        assert ran.strip() == f"node-agent for {machine}"
