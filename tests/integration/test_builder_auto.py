"""`builder: auto` on the engine most Linux users run: Docker 26 with the classic image store,
whose docker driver refuses several platforms at once (scripts/engine's "stock" engine).

multiarch then makes a `docker-container` builder from the generated buildkitd.toml. It runs the
BuildKit image that scripts/buildkit builds from Debian's source and publishes in the registry,
pulled by the engine as moby/buildkit:buildx-stable-1 through its docker.io mirror, as it
would be from Docker Hub. BuildKit in a container does not see the engine's daemon.json, so
the mirror and the insecure registry reach it only through buildkitd.toml, which is the point.
"""

import json
import shutil
import subprocess

import pytest
import yaml

from tests.conftest import ROOT, STOCK, docker, engine_env, raw_manifest, require_classic
from tests.support.netns import RemoteHost, start_registry

PLATFORMS = ["linux/amd64", "linux/arm64"]
UNAME = {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}
# The engine's docker.io mirror, which BuildKit must be told of to resolve FROM busybox:1.35.
MIRROR = "127.0.0.1:5000"

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def stock(engine):
    require_classic(STOCK, "stock")
    yield STOCK
    remove_builder()


@pytest.fixture(scope="module")
def http_registry(stock, tmp_path_factory) -> str:
    """A plain-HTTP registry at a non-loopback address, as in the seed's buildkitd.toml."""
    host = RemoteHost().up()
    yield start_registry(host, tmp_path_factory.mktemp("remote"), 5000)
    host.down()


def remove_builder() -> None:
    subprocess.run(["docker", "buildx", "rm", "multiarch"], capture_output=True,
                   env=engine_env(STOCK))


def workspace_for(workspace, repository: str, registries: dict, builder: str | None) -> None:
    shutil.copytree(ROOT / "tests" / "fixtures" / "seed", workspace.path / "seed",
                    dirs_exist_ok=True)
    image = {"context": "seed", "tags": ["v1"], "repository": repository, "strategy": "buildx"}
    path = workspace.manifest({"demo": image}, PLATFORMS)
    document = yaml.safe_load(path.read_text())
    document["registries"] = registries
    if builder:
        document["builder"] = builder
    path.write_text(yaml.safe_dump(document))


def builder_facts() -> dict:
    """`docker buildx inspect multiarch` on the stock engine, as key: value lines."""
    out = docker("buildx", "inspect", "multiarch", docker_host=STOCK)
    facts = {}
    for line in out.splitlines():
        key, _, value = line.partition(":")
        facts.setdefault(key.strip(), value.strip())
    return facts


def test_without_auto_the_stock_engine_refuses_in_one_line(workspace, stock):
    workspace_for(workspace, f"localhost:5000/{workspace.namespace}/demo", {}, None)

    result = workspace.doit("build", docker_host=STOCK, check=False)

    assert result.returncode != 0
    said = result.stdout + result.stderr
    assert "demo: the builder default (docker driver) cannot build several platforms" in said
    assert "builder: auto" in said
    assert "Traceback" not in said


def test_auto_makes_a_container_builder_from_buildkitd_toml_and_pushes_to_an_insecure_registry(
        workspace, stock, http_registry):
    remove_builder()
    repository = f"{http_registry}/{workspace.namespace}/demo"
    registries = {http_registry: {"insecure": True},
                  "docker.io": {"mirrors": [MIRROR]}, MIRROR: {"insecure": True}}
    workspace_for(workspace, repository, registries, "auto")

    result = workspace.doit("build", docker_host=STOCK)

    config = workspace.path / ".multiarch" / "buildkitd.toml"
    assert (f"$ docker buildx create --name multiarch --driver docker-container --driver-opt "
            f"network=host --buildkitd-config {config}") in result.stdout
    assert "$ docker buildx build --builder multiarch" in result.stdout
    facts = builder_facts()
    assert facts["Driver"] == "docker-container"
    assert facts["Status"] == "running"
    # The list is in the insecure registry with both platforms, and each runs as itself.
    index = json.loads(subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{repository}:v1"],
        capture_output=True, text=True, check=True).stdout)
    assert {f"{m['platform']['os']}/{m['platform']['architecture']}"
            for m in index["manifests"] if m["platform"]["os"] != "unknown"} == set(PLATFORMS)
    for platform in PLATFORMS:  # the default engine has the remote registry as insecure
        said = docker("run", "--rm", "--pull", "always", "--platform", platform,
                      f"{repository}:v1", "uname", "-m")
        assert said.strip() == UNAME[platform]

    # Nothing changed: nothing runs, and the builder is not made again.
    again = workspace.doit("build", docker_host=STOCK)
    assert "docker buildx" not in again.stdout, again.stdout

    # Another registry setting is a new buildkitd.toml: BuildKit reads it only at creation,
    # so the next build makes the builder again from it.
    registries["10.77.0.3:5000"] = {"insecure": True}
    workspace_for(workspace, repository, registries, "auto")
    (workspace.path / "seed" / "hello.txt").write_text("changed\n")
    rebuilt = workspace.doit("build", docker_host=STOCK)
    assert "$ docker buildx rm multiarch" in rebuilt.stdout
    assert "$ docker buildx create --name multiarch" in rebuilt.stdout
    copied = workspace.path / "in-builder.toml"
    docker("cp", "buildx_buildkit_multiarch0:/etc/buildkit/buildkitd.toml", str(copied),
           docker_host=STOCK)
    assert '[registry."10.77.0.3:5000"]' in copied.read_text()


def test_auto_on_the_containerd_store_uses_the_engine_itself(workspace, engine):
    repository = f"localhost:5000/{workspace.namespace}/demo"
    workspace_for(workspace, repository, {}, "auto")

    result = workspace.doit("build")

    assert "docker buildx create" not in result.stdout
    assert "$ docker buildx build --pull" in result.stdout
    assert raw_manifest(f"{repository}:v1") is not None
