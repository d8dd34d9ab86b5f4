"""What each platform's build pulls, as the manifest links it: dependencies from every
construct BuildKit pulls through, digests that follow exactly the platforms pulled, the
reasons `doit status` gives, and bad Dockerfiles as one line."""

from types import SimpleNamespace

import pytest
import yaml
from multiarch.tasks.doit.checkers import inputs_unchanged
from multiarch.tasks.inputs.digests import Inputs
from multiarch.tasks.inputs.explain import explain
from multiarch.tasks.model.errors import ManifestError
from multiarch.tasks.model.manifest import load_manifest
from multiarch.tasks.model.platforms import host_platform, parse_platform
from multiarch.tasks.report import status

AMD64, ARM64 = parse_platform("linux/amd64"), parse_platform("linux/arm64")
CROSS = """\
FROM --platform=$BUILDPLATFORM localhost:5000/base:v1 AS build
ARG TARGETARCH
RUN echo $TARGETARCH > /arch
FROM localhost:5000/base:v1
COPY --from=build /arch /arch
"""


def write(tmp_path, dockerfiles: dict, images: dict | None = None,
          platforms=("linux/amd64", "linux/arm64")) -> str:
    images = images or {}
    for name, text in dockerfiles.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "Dockerfile").write_text(text)
        images.setdefault(name, {})
        images[name].setdefault("context", name)
        images[name].setdefault("tags", ["v1"])
    document = {"version": 1, "registry": "localhost:5000", "platforms": list(platforms),
                "images": images}
    (tmp_path / "multiarch.yaml").write_text(yaml.safe_dump(document))
    return str(tmp_path / "multiarch.yaml")


def pulled(manifest, name, platform):
    return [(p.stage, p.reference, str(p.platform)) for p in
            manifest.image(name).pulls_for(platform)]


def test_a_build_platform_stage_pulls_the_base_for_the_host(tmp_path):
    assert host_platform() == AMD64  # these expectations are written for an x86-64 host
    manifest = load_manifest(write(tmp_path, {"base": "FROM busybox:1.35\n", "app": CROSS}))
    assert manifest.image("app").depends_on == ("base",)
    assert pulled(manifest, "app", ARM64) == [
        ("build", "localhost:5000/base:v1", "linux/amd64"),
        ("1", "localhost:5000/base:v1", "linux/arm64")]
    assert pulled(manifest, "app", AMD64) == [
        ("build", "localhost:5000/base:v1", "linux/amd64"),
        ("1", "localhost:5000/base:v1", "linux/amd64")]


class Registry:
    """What the registry probe answers for an outside image: a digest per platform."""

    def __init__(self, **digests):
        self.digests = digests

    def platform_digest(self, ref, platform):
        return self.digests[platform.architecture]


def digests(path, registry):
    manifest = load_manifest(path)
    inputs = Inputs(manifest, registry)
    return {p: inputs.digest(manifest.image("app"), p) for p in (AMD64, ARM64)}


OUTSIDE_CROSS = CROSS.replace("localhost:5000/base:v1", "busybox:1.35")


def test_drift_of_the_amd64_child_of_a_build_platform_base_changes_every_platform(tmp_path):
    """The issue's stale image: only build:app:linux/amd64 was rebuilt; every platform's build
    stage runs on the amd64 base, so all of them must be."""
    path = write(tmp_path, {"app": OUTSIDE_CROSS})
    before = digests(path, Registry(amd64="sha256:a1", arm64="sha256:b1"))
    after = digests(path, Registry(amd64="sha256:a2", arm64="sha256:b1"))
    assert after[AMD64] != before[AMD64] and after[ARM64] != before[ARM64]


def test_drift_of_its_arm64_child_changes_only_arm64(tmp_path):
    path = write(tmp_path, {"app": OUTSIDE_CROSS})
    before = digests(path, Registry(amd64="sha256:a1", arm64="sha256:b1"))
    after = digests(path, Registry(amd64="sha256:a1", arm64="sha256:b2"))
    assert after[AMD64] == before[AMD64]
    assert after[ARM64] != before[ARM64]


def test_a_change_of_a_base_of_the_manifest_changes_the_cross_build(tmp_path):
    path = write(tmp_path, {"base": "FROM busybox:1.35\n", "app": CROSS})
    before = digests(path, None)
    (tmp_path / "base" / "Dockerfile").write_text("FROM busybox:1.35\nENV X=1\n")
    after = digests(path, None)
    assert after[AMD64] != before[AMD64] and after[ARM64] != before[ARM64]


def test_pull_false_takes_outside_bases_as_they_were(tmp_path):
    path = write(tmp_path, {"app": OUTSIDE_CROSS}, {"app": {"pull": False}})
    before = digests(path, Registry(amd64="sha256:a1", arm64="sha256:b1"))
    after = digests(path, Registry(amd64="sha256:a2", arm64="sha256:b2"))
    assert after == before


def test_status_names_the_stage_the_reference_and_the_platform_that_moved(tmp_path):
    path = write(tmp_path, {"app": OUTSIDE_CROSS})
    manifest = load_manifest(path)
    image = manifest.image("app")
    before = Inputs(manifest, Registry(amd64="sha256:a1", arm64="sha256:b1")).breakdown(
        image, ARM64)
    after = Inputs(manifest, Registry(amd64="sha256:a2", arm64="sha256:b1")).breakdown(
        image, ARM64)
    assert explain(before, after) == [
        "stage build: FROM busybox:1.35 (linux/amd64) now points at sha256:a2"]


@pytest.mark.parametrize("dockerfile", [
    'ARG BASE="localhost:5000/base:v1"\nFROM ${BASE} AS b\nRUN true\n',
    "FROM busybox:1.35\nRUN --mount=type=bind,from=localhost:5000/base:v1,target=/m true\n",
    "FROM busybox:1.35\nCOPY --from=localhost:5000/base:v1 /bin/sh /sh\n",
])
def test_quoted_args_mounts_and_copies_name_dependencies(tmp_path, dockerfile):
    manifest = load_manifest(write(tmp_path, {"base": "FROM busybox:1.35\n", "app": dockerfile}))
    assert manifest.image("app").depends_on == ("base",)


def test_an_unreachable_stage_is_no_dependency(tmp_path):
    dockerfile = "FROM localhost:5000/base:v1 AS unused\nFROM busybox:1.35\n"
    manifest = load_manifest(write(tmp_path, {"base": "FROM busybox:1.35\n", "app": dockerfile}))
    assert manifest.image("app").depends_on == ()
    assert manifest.image("app").base_images == ("busybox:1.35",)


def test_a_dockerfile_buildkit_refuses_is_one_line(tmp_path):
    path = write(tmp_path, {"app": "FROM busybox:1.35\nCOPY --from=nosuch:1:2 /a /b\n"})
    with pytest.raises(ManifestError) as caught:
        load_manifest(path, "multiarch.yaml")
    message = str(caught.value)
    assert message.startswith("multiarch.yaml: images.app.dockerfile: app/Dockerfile line 2: ")
    assert "\n" not in message


def test_an_add_of_a_url_is_reported_untracked(tmp_path):
    manifest = load_manifest(write(
        tmp_path, {"app": "FROM busybox:1.35\nADD https://example.com/x.tgz /x\n"}))
    [note] = manifest.image("app").untracked
    assert note.startswith("line 2: ADD https://example.com/x.tgz")
    assert "not tracked" in note


def test_doit_status_says_what_is_not_tracked(tmp_path):
    manifest = load_manifest(write(
        tmp_path, {"app": "FROM scratch\nADD https://example.com/x.tgz /x\n"},
        platforms=("linux/amd64",)))
    lines = status.report(manifest, Inputs(manifest))
    assert lines[-1] == ("app: line 2: ADD https://example.com/x.tgz: a URL without --checksum"
                         " is not tracked")


def test_a_routed_platform_builds_on_its_node_and_a_fallback_is_never_taken_as_done(tmp_path):
    path = write(tmp_path, {"app": OUTSIDE_CROSS})
    document = yaml.safe_load((tmp_path / "multiarch.yaml").read_text())
    document["builders"] = {"linux/arm64": {"docker_host": "tcp://arm-node:2375"}}
    (tmp_path / "multiarch.yaml").write_text(yaml.safe_dump(document))
    manifest = load_manifest(path)
    # A native arm64 node runs the $BUILDPLATFORM stage on arm64 itself.
    assert pulled(manifest, "app", ARM64) == [("build", "busybox:1.35", "linux/arm64"),
                                              ("1", "busybox:1.35", "linux/arm64")]
    inputs = Inputs(manifest, Registry(amd64="sha256:a1", arm64="sha256:b1"))
    checker = inputs_unchanged(manifest.image("app"), ARM64, inputs)

    def saved(builder):
        task = SimpleNamespace(value_savers=[], values={"builder": builder})
        checker(task, {})
        return task.value_savers[0]()["input_digest"]

    digest = inputs.digest(manifest.image("app"), ARM64)
    assert saved("tcp://arm-node:2375") == digest
    # The node was down and the build ran here, its build stage on amd64: not that digest.
    assert saved("default") != digest
