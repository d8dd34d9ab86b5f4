"""Issue #17: a run's stale builds go to BuildKit together, in one `docker buildx bake` per
dependency level, on an engine that can build several platforms at once; the classic engine
builds one platform at a time as before. Checked with skopeo and `docker run`."""

import json
import re
import subprocess

import yaml

from tests.conftest import CLASSIC, REGISTRY, docker, raw_manifest, require_classic

PLATFORMS = ["linux/amd64", "linux/arm64"]
MACHINES = {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}
BAKES = re.compile(r"^\[bake\] (\d+) builds of (\d+) images in one BuildKit session$", re.M)


def shop(workspace) -> None:
    """base and tools FROM busybox, web FROM base; each with a RUN step of its own."""
    for name, source in (("base", "busybox:1.35"), ("tools", "busybox:1.35"),
                         ("web", f"{REGISTRY}/{workspace.namespace}/base:v1")):
        context = workspace.context(name, f"FROM {source}\nCOPY {name}.txt /\n"
                                          f"RUN cat /{name}.txt && uname -m > /{name}.arch\n")
        (context / f"{name}.txt").write_text(f"{workspace.namespace} {name} one\n")
    workspace.manifest({name: {"context": name, "tags": ["v1"]}
                        for name in ("base", "tools", "web")}, PLATFORMS)


def bakes(result) -> list[tuple[int, int]]:
    return [(int(b), int(i)) for b, i in BAKES.findall(result.stdout)]


def ran(result, kind: str = "build:") -> list[str]:
    return sorted(line.split()[1] for line in result.stdout.splitlines()
                  if line.startswith(f".  {kind}") and line.split()[1].count(":") == 2)


def skopeo_raw(ref: str) -> dict:
    output = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false",
                             f"docker://{ref}"], capture_output=True, text=True, check=True)
    return json.loads(output.stdout)


def image_digest(ref: str, platform: str) -> str:
    """The digest of ``platform``'s image behind a per-platform tag, as skopeo reads it."""
    document = skopeo_raw(ref)
    if "manifests" not in document:
        return subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--format",
                               "{{.Digest}}", f"docker://{ref}"], capture_output=True,
                              text=True, check=True).stdout.strip()
    [entry] = [m for m in document["manifests"]
               if "/".join((m["platform"]["os"], m["platform"]["architecture"])) == platform]
    return entry["digest"]


def test_a_cold_run_bakes_each_level_once_and_publishes_every_list(workspace):
    shop(workspace)
    result = workspace.doit("build")

    assert bakes(result) == [(4, 2), (2, 1)]  # base and tools, then web once base is listed
    assert "$ docker build " not in result.stdout
    for name in ("base", "tools", "web"):
        repository = f"{REGISTRY}/{workspace.namespace}/{name}"
        listed = {f"{m['platform']['os']}/{m['platform']['architecture']}": m["digest"]
                  for m in skopeo_raw(f"{repository}:v1")["manifests"]}
        assert listed == {p: image_digest(f"{repository}:v1-{p.split('/')[1]}", p)
                          for p in PLATFORMS}
        for platform, machine in MACHINES.items():
            shown = docker("run", "--rm", "--pull", "always", "--platform", platform,
                           f"{repository}:v1", "cat", f"/{name}.arch")
            assert shown.strip() == machine
    assert docker("run", "--rm", "--platform", "linux/arm64",
                  f"{REGISTRY}/{workspace.namespace}/web:v1", "cat", "/base.txt").strip() \
        == f"{workspace.namespace} base one"

    again = workspace.doit("build")
    assert bakes(again) == [] and ran(again) == []


def test_one_changed_file_bakes_only_that_image_s_platforms(workspace):
    shop(workspace)
    workspace.doit("build")
    web = f"{REGISTRY}/{workspace.namespace}/web:v1"
    before = raw_manifest(web)

    (workspace.path / "tools" / "tools.txt").write_text(f"{workspace.namespace} tools two\n")
    result = workspace.doit("build")

    assert bakes(result) == [(2, 1)]
    assert ran(result) == ["build:tools:linux/amd64", "build:tools:linux/arm64"]
    assert raw_manifest(web) == before
    shown = docker("run", "--rm", "--pull", "always", "--platform", "linux/arm64",
                   f"{REGISTRY}/{workspace.namespace}/tools:v1", "cat", "/tools.txt")
    assert shown.strip() == f"{workspace.namespace} tools two"


def test_a_build_alone_builds_into_the_engine_and_pushes_nothing(workspace):
    shop(workspace)
    result = workspace.doit("build:tools:linux/arm64")
    assert bakes(result) == []
    ref = f"{REGISTRY}/{workspace.namespace}/tools:v1-arm64"
    assert raw_manifest(ref) is None
    assert docker("run", "--rm", "--platform", "linux/arm64", ref, "cat",
                  "/tools.arch").strip() == "aarch64"


def test_the_classic_engine_builds_one_platform_at_a_time(workspace):
    require_classic()
    context = workspace.context("app", "FROM busybox:1.35\nCOPY app.txt /\nRUN cat /app.txt\n")
    (context / "app.txt").write_text(f"{workspace.namespace} app\n")
    workspace.manifest({"app": {"context": "app", "tags": ["v1"]}}, PLATFORMS)

    result = workspace.doit("build", docker_host=CLASSIC)

    assert bakes(result) == []
    assert result.stdout.count("$ docker build ") == 2
    listed = skopeo_raw(f"{REGISTRY}/{workspace.namespace}/app:v1")["manifests"]
    assert sorted(f"{m['platform']['os']}/{m['platform']['architecture']}"
                  for m in listed) == PLATFORMS


def test_a_target_of_one_platform_is_taken_only_as_the_platform_its_config_names(workspace):
    """`dockerfiles:` splits an image into one bake target per platform, each pushing a lone
    manifest (no attestations) under its tag; each is put under its platform's tags only
    because its own config says that platform, and none is built again."""
    context = workspace.context("app", "FROM busybox:1.35\nRUN uname -m > /arch\n")
    (context / "Dockerfile.arm64").write_text("FROM busybox:1.35\nRUN uname -m > /arch.arm\n")
    path = workspace.manifest({"app": {"context": "app", "tags": ["v1"],
                                       "dockerfiles": {"linux/arm64": "Dockerfile.arm64"}}},
                              PLATFORMS)
    document = yaml.safe_load(path.read_text())
    document["attestations"] = "false"
    path.write_text(yaml.safe_dump(document))

    result = workspace.doit("build")

    assert bakes(result) == [(2, 1)]
    assert "$ docker build " not in result.stdout, result.stdout
    ref = f"{REGISTRY}/{workspace.namespace}/app"
    assert docker("run", "--rm", "--platform", "linux/amd64", f"{ref}:v1-amd64", "cat",
                  "/arch").strip() == "x86_64"
    assert docker("run", "--rm", "--platform", "linux/arm64", f"{ref}:v1-arm64", "cat",
                  "/arch.arm").strip() == "aarch64"
