"""`strategy: buildx` with `builders:`: one buildx builder with a docker-container BuildKit
node on each engine, each platform built on its own node. Which node built what is read off
each node's BuildKit (`buildctl du`), not off multiarch's output."""

import subprocess
import uuid

import pytest
import yaml

from tests.conftest import STOCK, builders_of, engine_env, raw_manifest, require_classic

MIRROR = "127.0.0.1:5000"
BUILDER = "multiarch-nodes"
DEFAULT = "unix:///var/run/docker.sock"
DOCKERFILE = "FROM busybox:1.35\nRUN uname -m > /arch && echo {token}\n"


@pytest.fixture
def nodes_builder(engine):
    require_classic(STOCK, "stock")
    yield BUILDER
    subprocess.run(["docker", "buildx", "rm", BUILDER], capture_output=True)


def executed_on(host: str, index: int) -> str:
    """What the BuildKit of node ``index`` ran, as its own `buildctl du -v` lists it."""
    container = f"buildx_buildkit_{BUILDER}{index}"
    result = subprocess.run(["docker", "exec", container, "buildctl", "du", "-v"],
                            capture_output=True, text=True, env=engine_env(host), timeout=60)
    assert result.returncode == 0, result.stderr
    return "\n".join(line for line in result.stdout.splitlines() if "from exec" in line)


def test_each_platform_builds_on_its_own_engine_s_node(workspace, nodes_builder):
    tokens = [f"token-{uuid.uuid4().hex[:12]}" for _ in range(2)]
    context = workspace.context("app", DOCKERFILE.format(token=tokens[0]))
    path = workspace.manifest({"app": {"context": "app", "tags": ["v1"]}},
                              ["linux/amd64", "linux/arm64"])
    document = yaml.safe_load(path.read_text())
    document.update(strategy="buildx", builders={"linux/arm64": {"docker_host": STOCK}},
                    registries={"docker.io": {"mirrors": [MIRROR]}, MIRROR: {"insecure": True},
                                "localhost:5000": {"insecure": True}})
    path.write_text(yaml.safe_dump(document))

    first = workspace.doit("build")

    assert (f"docker buildx create --name {BUILDER} --node {BUILDER}0 --driver docker-container "
            "--driver-opt network=host --platform linux/amd64 --buildkitd-config") in first.stdout
    assert (f"docker buildx create --append --name {BUILDER} --node {BUILDER}1 "
            "--driver docker-container --driver-opt network=host --platform linux/arm64 "
            f"--buildkitd-config {workspace.path / '.multiarch' / 'buildkitd.toml'} {STOCK}"
            ) in first.stdout
    assert tokens[0] in executed_on(DEFAULT, 0) and tokens[0] in executed_on(STOCK, 1)
    assert executed_on(DEFAULT, 0).count(tokens[0]) == 1  # amd64 only: arm64 went to the stock
    assert executed_on(STOCK, 1).count(tokens[0]) == 1
    ref = f"localhost:5000/{workspace.namespace}/app:v1"
    index = raw_manifest(ref)
    listed = {f"{m['platform']['os']}/{m['platform']['architecture']}": m["digest"]
              for m in index["manifests"] if m["platform"]["os"] != "unknown"}
    assert set(listed) == {"linux/amd64", "linux/arm64"}
    assert builders_of(workspace, "app") == {"linux/amd64": "default", "linux/arm64": STOCK}
    report = yaml.safe_load((workspace.path / ".multiarch" / "report.json").read_text())
    [image] = report["images"]
    assert {cell["platform"]: cell["image_digest"] for cell in image["platforms"]} == listed

    (context / "Dockerfile").write_text(DOCKERFILE.format(token=tokens[1]))
    second = workspace.doit("build")

    assert "docker buildx create" not in second.stdout  # the same nodes: the builder is kept
    assert tokens[1] in executed_on(STOCK, 1) and tokens[1] in executed_on(DEFAULT, 0)


def test_an_unreachable_node_stops_the_buildx_build_with_emulate_false(workspace, nodes_builder):
    workspace.context("app", DOCKERFILE.format(token="never-built"))
    path = workspace.manifest({"app": {"context": "app"}}, ["linux/amd64", "linux/arm64"])
    document = yaml.safe_load(path.read_text())
    gone = "unix:///run/multiarch-nowhere/docker.sock"
    document.update(strategy="buildx",
                    builders={"linux/arm64": {"docker_host": gone, "emulate": False}})
    path.write_text(yaml.safe_dump(document))

    result = workspace.doit("build", check=False)

    said = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"linux/arm64: builder {gone} is unreachable" in said
    assert "docker buildx create" not in said and "docker buildx build" not in said
