"""builders: docker argv, manifest lists from the registry's children, DockerError; no engine."""

import hashlib
import json
import shlex
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
from multiarch.builders.engine import cli as run_module
from multiarch.builders.errors import DockerError
from multiarch.builders.stages import build as build_module
from multiarch.builders.stages import manifest_list
from multiarch.builders.stages.argv import build_argv
from multiarch.builders.stages.manifest_list import (
    child_descriptor,
    in_cli_order,
    list_body,
    select_child,
)
from multiarch.tasks.model.manifest import Image
from multiarch.tasks.model.platforms import parse_platform

AMD64 = parse_platform("linux/amd64")
ARM64 = parse_platform("linux/arm64")
ARMV7 = parse_platform("linux/arm/v7")
CTX = Path("/src/demo")
IID = Path("/state/iid/demo-arm64")
IMAGE = Image(
    name="demo",
    context=CTX,
    dockerfile=CTX / "Dockerfile",
    repository="localhost:5000/demo",
    tags=("v1",),
    platforms=(AMD64, ARM64),
)
REPO = "localhost:5000/demo"


def digest(char: str) -> str:
    return "sha256:" + char * 64


# ---------------------------------------------------------------- build_argv

HEAD = ["docker", "build"]
FILE = ["-f", "/src/demo/Dockerfile"]
TAIL = ["--iidfile", str(IID), "-t", "localhost:5000/demo:v1-arm64", "/src/demo"]


@pytest.mark.parametrize(
    ("changes", "platform", "expected"),
    [
        ({}, ARM64, [*HEAD, "--pull", "--platform", "linux/arm64", *FILE, *TAIL]),
        ({"pull": False}, ARM64, [*HEAD, "--platform", "linux/arm64", *FILE, *TAIL]),
        (
            {"build_args": (("VERSION", "1.2"), ("ALPINE", "3.20"))},
            ARM64,
            [*HEAD, "--pull", "--platform", "linux/arm64", *FILE,
             "--build-arg", "VERSION=1.2", "--build-arg", "ALPINE=3.20", *TAIL],
        ),
        (
            {"target": "runtime"},
            ARM64,
            [*HEAD, "--pull", "--platform", "linux/arm64", *FILE, "--target", "runtime", *TAIL],
        ),
        (
            {"tags": ("v1", "latest")},
            ARM64,
            [*HEAD, "--pull", "--platform", "linux/arm64", *FILE, "--iidfile", str(IID),
             "-t", "localhost:5000/demo:v1-arm64", "-t", "localhost:5000/demo:latest-arm64",
             "/src/demo"],
        ),
        (
            {},
            ARMV7,
            [*HEAD, "--pull", "--platform", "linux/arm/v7", *FILE, "--iidfile", str(IID),
             "-t", "localhost:5000/demo:v1-armv7", "/src/demo"],
        ),
    ],
    ids=["plain", "no-pull", "build-args-in-order", "target", "two-tags", "arm-v7"],
)
def test_build_argv(changes, platform, expected):
    assert build_argv(replace(IMAGE, **changes), platform, IID) == expected


def test_build_argv_keeps_shell_looking_values_as_single_items():
    image = replace(IMAGE, build_args=(("WHO", "$(id)"),), tags=("v1; rm -rf /",))
    argv = build_argv(image, ARM64, IID)
    assert argv[argv.index("--build-arg") + 1] == "WHO=$(id)"
    assert argv[argv.index("-t") + 1] == "localhost:5000/demo:v1; rm -rf /-arm64"
    assert len(argv) == len(build_argv(IMAGE, ARM64, IID)) + 2


def test_build_reads_the_fresh_iidfile(tmp_path, monkeypatch):
    stale = build_module.iidfile_path(tmp_path, IMAGE, ARM64)
    stale.parent.mkdir(parents=True)
    stale.write_text("sha256:stale")
    seen = []

    def fake_run(argv, what, prefix="", echo=True, progress=None, env=None):
        seen.append((argv, Path(argv[argv.index("--iidfile") + 1]).exists(), prefix, progress))
        stale.write_text(digest("1") + "\n")
        return ""

    monkeypatch.setattr(build_module, "run", fake_run)
    monkeypatch.setattr(build_module, "engine_arch", lambda node=None: "amd64")
    monkeypatch.setattr(build_module, "engine_image_id", lambda iid, ref, env: iid)
    result = build_module.build(IMAGE, ARM64, tmp_path)
    assert seen == [(build_argv(IMAGE, ARM64, stale), False, "[demo linux/arm64] ", "building")]
    assert result == {"image_id": digest("1"), "source": "build", "emulated": True,
                      "builder": "default"}


BROKEN = ("#6 exporting to image\n#6 ERROR: failed to commit zz6mqd0a60hx9a294cdr3e7tt to "
          "owpd23608l3dzn1q6pqz8zjar during finalize: failed to stat active key during commit: "
          "snapshot zz6mqd0a60hx9a294cdr3e7tt does not exist: not found\n")


@pytest.mark.parametrize(("output", "runs"), [(BROKEN, 2), ("ERROR: failed to solve: nope\n", 1)])
def test_a_cache_broken_by_an_interrupted_build_is_bypassed_once(tmp_path, monkeypatch,
                                                                 output, runs):
    """Seen after `doit build` was killed mid-export: the same inputs fail until --no-cache."""
    iidfile = build_module.iidfile_path(tmp_path, IMAGE, ARM64)
    seen = []

    def fake_run(argv, what, prefix="", echo=True, progress=None, env=None):
        seen.append(argv)
        if len(seen) == 1:
            raise DockerError(f"{what} failed (exit 1)", argv, output)
        iidfile.write_text(digest("1"))
        return ""

    monkeypatch.setattr(build_module, "run", fake_run)
    monkeypatch.setattr(build_module, "engine_arch", lambda node=None: "arm64")
    monkeypatch.setattr(build_module, "engine_image_id", lambda iid, ref, env: iid)
    if runs == 1:
        with pytest.raises(DockerError):
            build_module.build(IMAGE, ARM64, tmp_path)
    else:
        assert build_module.build(IMAGE, ARM64, tmp_path)["image_id"] == digest("1")
    argv = build_argv(IMAGE, ARM64, iidfile)
    assert seen == [argv, [*argv[:-1], "--no-cache", argv[-1]]][:runs]


# ---------------------------------------------------------------- manifest lists

LIST = "localhost:5000/demo:v1"
DOCKER_V2 = "application/vnd.docker.distribution.manifest.v2+json"
OCI_V1 = "application/vnd.oci.image.manifest.v1+json"


def entry(char: str, os: str, architecture: str, variant: str | None = None) -> dict:
    """An index entry as a per-platform push from the containerd image store has it."""
    platform = {"architecture": architecture, "os": os}
    if variant:
        platform["variant"] = variant
    return {"mediaType": OCI_V1, "digest": digest(char), "size": 1054, "platform": platform}


def attestation(char: str, of: str) -> dict:
    item = entry(char, "unknown", "unknown")
    item["annotations"] = {
        "vnd.docker.reference.digest": digest(of),
        "vnd.docker.reference.type": "attestation-manifest",
    }
    return item


def index(*entries: dict) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": manifest_list.OCI_INDEX,
                       "manifests": list(entries)}).encode()


SCHEMA2 = json.dumps({
    "schemaVersion": 2,
    "mediaType": DOCKER_V2,
    "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
               "digest": digest("c"), "size": 611},
    "layers": [],
}, indent=3).encode()


@pytest.mark.parametrize(
    ("manifests", "platform", "expected"),
    [
        ([entry("2", "linux", "arm64"), attestation("3", of="2")], ARM64, digest("2")),
        ([attestation("3", of="2"), entry("2", "linux", "arm64")], ARM64, digest("2")),
        ([entry("4", "linux", "arm64", "v8"), attestation("5", of="4")], ARM64, digest("4")),
        ([entry("6", "linux", "arm"), attestation("7", of="6")], ARMV7, digest("6")),
        (
            [entry("8", "linux", "amd64"), entry("9", "linux", "arm", "v7"),
             attestation("a", of="8"), attestation("b", of="9")],
            ARMV7,
            digest("9"),
        ),
        (
            [entry("8", "linux", "amd64"), entry("9", "linux", "arm", "v7")],
            AMD64,
            digest("8"),
        ),
        (
            [entry("c", "linux", "arm", "v6"), entry("d", "linux", "arm", "v7")],
            ARMV7,
            digest("d"),
        ),
        ([entry("e", "linux", "amd64"), attestation("f", of="e")], ARM64, digest("e")),
    ],
    ids=["image+attestation", "attestation-first", "arm64-v8", "arm-without-variant",
         "two-platforms-v7", "two-platforms-amd64", "v6-or-v7", "one-image-other-platform"],
)
def test_select_child(manifests, platform, expected):
    assert select_child(manifests, platform, f"{REPO}:v1-x")["digest"] == expected


@pytest.mark.parametrize(
    ("manifests", "found"),
    [
        (
            [entry("1", "linux", "amd64"), entry("2", "linux", "s390x"),
             attestation("3", of="1")],
            "linux/amd64, linux/s390x",
        ),
        ([attestation("3", of="1")], "none"),
        ([{"mediaType": OCI_V1, "digest": digest("1"), "size": 9}], "none"),  # as attestations
    ],
    ids=["two-other-images", "attestation-only", "no-platform"],
)
def test_select_child_without_a_single_image_names_ref_platform_and_found(manifests, found):
    ref = f"{REPO}:v1-arm64"
    with pytest.raises(DockerError) as caught:
        select_child(manifests, ARM64, ref)
    assert str(caught.value) == f"{ref} has no single image for linux/arm64 (found: {found})"


def test_a_plain_manifest_is_its_own_child_by_the_bytes_served():
    assert child_descriptor(SCHEMA2, DOCKER_V2, ARMV7, f"{REPO}:v1-armv7") == {
        "mediaType": DOCKER_V2,
        "size": len(SCHEMA2),
        "digest": "sha256:" + hashlib.sha256(SCHEMA2).hexdigest(),
        "platform": {"architecture": "arm", "os": "linux", "variant": "v7"},
    }
    assert child_descriptor(SCHEMA2, "", ARM64, "x")["mediaType"] == DOCKER_V2  # body says


def test_an_index_gives_its_platforms_entry_with_the_declared_platform():
    served = index(attestation("3", of="4"), entry("4", "linux", "arm64", "v8"))
    assert child_descriptor(served, manifest_list.OCI_INDEX, ARM64, f"{REPO}:v1-arm64") == {
        "mediaType": OCI_V1, "size": 1054, "digest": digest("4"),
        "platform": {"architecture": "arm64", "os": "linux"},
    }


@pytest.mark.parametrize("body", [b"<html>502</html>", b"[]"])
def test_a_child_that_is_no_manifest_names_its_ref(body):
    with pytest.raises(DockerError, match=rf"^{REPO}:v1-arm64: the registry's manifest is not"):
        child_descriptor(body, "text/html", ARM64, f"{REPO}:v1-arm64")


def child(char: str, media_type: str, platform) -> dict:
    return {"mediaType": media_type, "size": 528, "digest": digest(char),
            "platform": platform.to_oci()}


def test_a_list_of_docker_manifests_is_a_docker_list_as_go_indents_it():
    body, media_type = list_body([child("a", DOCKER_V2, AMD64), child("7", DOCKER_V2, ARMV7)])
    assert media_type == manifest_list.DOCKER_LIST
    assert body.decode() == (
        '{\n'
        '   "schemaVersion": 2,\n'
        f'   "mediaType": "{manifest_list.DOCKER_LIST}",\n'
        '   "manifests": [\n'
        '      {\n'
        f'         "mediaType": "{DOCKER_V2}",\n'
        '         "size": 528,\n'
        f'         "digest": "{digest("a")}",\n'
        '         "platform": {\n'
        '            "architecture": "amd64",\n'
        '            "os": "linux"\n'
        '         }\n'
        '      },\n'
        '      {\n'
        f'         "mediaType": "{DOCKER_V2}",\n'
        '         "size": 528,\n'
        f'         "digest": "{digest("7")}",\n'
        '         "platform": {\n'
        '            "architecture": "arm",\n'
        '            "os": "linux",\n'
        '            "variant": "v7"\n'
        '         }\n'
        '      }\n'
        '   ]\n'
        '}'
    )


def test_children_are_listed_in_the_clis_order_by_digest():
    children = [child("b", OCI_V1, AMD64), child("3", OCI_V1, ARM64), child("a", OCI_V1, ARMV7)]
    assert [c["digest"] for c in in_cli_order(children)] == [digest("3"), digest("a"),
                                                             digest("b")]


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        (OCI_V1, OCI_V1, manifest_list.OCI_INDEX),
        (OCI_V1, DOCKER_V2, manifest_list.OCI_INDEX),
        (DOCKER_V2, OCI_V1, manifest_list.DOCKER_LIST),
    ],
    ids=["oci", "oci-first", "docker-first"],
)
def test_the_first_child_decides_the_lists_format(first, second, expected):
    body, media_type = list_body([child("a", first, AMD64), child("7", second, ARMV7)])
    assert media_type == json.loads(body)["mediaType"] == expected


class FakeRegistry:
    """builders.registry.client.Registry's get and put over a dict of tag → (body, type)."""

    def __init__(self, manifests: dict):
        self.manifests, self.calls = dict(manifests), []

    def get(self, path, reference):
        self.calls.append(("GET", path, reference))
        found = self.manifests.get(reference)
        return None if found is None else (*found, "sha256:" + hashlib.sha256(found[0]).hexdigest())

    def put(self, path, reference, body, media_type):
        self.calls.append(("PUT", path, reference, media_type))
        self.manifests[reference] = (body, media_type)
        return "sha256:" + hashlib.sha256(body).hexdigest()


def pushed(tags: tuple[str, ...]) -> dict:
    """What two containerd-store pushes leave: an index per per-platform tag."""
    served = {}
    for tag in tags:
        served[f"{tag}-amd64"] = (index(entry("a", "linux", "amd64"), attestation("1", of="a")),
                                  manifest_list.OCI_INDEX)
        served[f"{tag}-armv7"] = (index(entry("7", "linux", "arm", "v7"),
                                        attestation("2", of="7")), manifest_list.OCI_INDEX)
    return served


@pytest.fixture
def registry(monkeypatch):
    fake = FakeRegistry(pushed(("v1", "latest")))
    seen = []

    def repository_of(image, registries=()):
        seen.append(registries)
        return fake, "demo"

    monkeypatch.setattr(manifest_list, "repository_of", repository_of)
    fake.seen = seen
    return fake


def test_publish_resolves_every_child_then_puts_each_list(registry, capsys):
    image = replace(IMAGE, platforms=(AMD64, ARMV7), tags=("v1", "latest"))
    settings = (SimpleNamespace(host="localhost:5000", insecure=True, ca=None),)
    result = manifest_list.publish(image, settings)
    assert registry.seen == [settings]
    assert registry.calls == [
        ("GET", "demo", "v1-amd64"), ("GET", "demo", "v1-armv7"),
        ("GET", "demo", "latest-amd64"), ("GET", "demo", "latest-armv7"),
        ("PUT", "demo", "v1", manifest_list.OCI_INDEX),
        ("PUT", "demo", "latest", manifest_list.OCI_INDEX),
    ]
    body = registry.manifests["v1"][0]
    assert json.loads(body)["manifests"] == [child("7", OCI_V1, ARMV7) | {"size": 1054},
                                             child("a", OCI_V1, AMD64) | {"size": 1054}]
    listed = "sha256:" + hashlib.sha256(body).hexdigest()
    amd64, armv7 = f"{REPO}@{digest('a')}", f"{REPO}@{digest('7')}"
    assert result == {
        "lists": {LIST: listed, f"{REPO}:latest": listed},
        "children": {"linux/amd64": amd64, "linux/arm/v7": armv7},
    }
    assert capsys.readouterr().out == (
        f"[demo] $ docker buildx imagetools create -t {LIST} {armv7} {amd64}\n"
        f"[demo] $ docker buildx imagetools create -t {REPO}:latest {armv7} {amd64}\n"
    )


def test_publish_with_a_missing_platform_publishes_nothing(registry):
    del registry.manifests["latest-armv7"]
    image = replace(IMAGE, platforms=(AMD64, ARMV7), tags=("v1", "latest"))
    with pytest.raises(DockerError, match=f"^{REPO}:latest-armv7 is not in the registry$"):
        manifest_list.publish(image)
    assert [call[0] for call in registry.calls] == ["GET"] * 4


def test_publish_over_an_index_without_the_platform_publishes_nothing(registry):
    registry.manifests["v1-armv7"] = (index(entry("6", "linux", "arm", "v6"),
                                            entry("8", "linux", "arm64")),
                                      manifest_list.OCI_INDEX)
    image = replace(IMAGE, platforms=(AMD64, ARMV7))
    with pytest.raises(DockerError, match=r"v1-armv7 has no single image for linux/arm/v7 "
                                          r"\(found: linux/arm/v6, linux/arm64\)"):
        manifest_list.publish(image)
    assert [call[0] for call in registry.calls] == ["GET", "GET"]


# ---------------------------------------------------------------- DockerError and run

def test_docker_error_message_only():
    assert str(DockerError("cannot reach the Docker engine")) == "cannot reach the Docker engine"


def test_docker_error_shows_the_quoted_command_and_the_last_20_output_lines():
    argv = ["docker", "build", "--build-arg", "WHO=$(id)", "-t", "demo:v1; rm -rf /", "."]
    output = "".join(f"line {n}\n" for n in range(1, 26)) + "\n\n"
    text = str(DockerError("build demo for linux/arm64 failed (exit 1)", argv, output))
    assert text.splitlines() == [
        "build demo for linux/arm64 failed (exit 1)",
        "command: docker build --build-arg 'WHO=$(id)' -t 'demo:v1; rm -rf /' .",
        *(f"  line {n}" for n in range(6, 26)),
    ]
    assert shlex.split(text.splitlines()[1].removeprefix("command: ")) == argv


class FakePopen:
    """Records how builders.engine.cli.run starts a process; prints two lines, exits ``code``."""

    code = 0
    started: list = []

    def __init__(self, argv, **options):
        FakePopen.started.append((argv, options))
        self.stdout = iter(["step 1\n", "step 2\n"])
        self.returncode = None

    def wait(self):
        self.returncode = FakePopen.code
        return self.returncode


@pytest.fixture
def fake_popen(monkeypatch):
    FakePopen.started = []
    FakePopen.code = 0
    subprocess = SimpleNamespace(Popen=FakePopen, PIPE=-1, STDOUT=-2)
    monkeypatch.setattr(run_module, "subprocess", subprocess)
    return FakePopen


def test_run_passes_argv_without_a_shell_and_echoes_it(fake_popen, capsys):
    argv = ["docker", "build", "-t", "demo:v1; rm -rf /", "."]
    assert run_module.run(argv, "build demo", prefix="[demo] ") == "step 1\nstep 2\n"
    (started, options), = fake_popen.started
    assert started is argv
    assert not options.get("shell", False)
    assert options["env"]["DOCKER_BUILDKIT"] == "1"
    assert capsys.readouterr().out == (
        "[demo] $ docker build -t 'demo:v1; rm -rf /' .\n[demo] step 1\n[demo] step 2\n"
    )


def test_run_failure_carries_argv_and_output(fake_popen):
    fake_popen.code = 3
    argv = ["docker", "manifest", "push", LIST]
    with pytest.raises(DockerError) as caught:
        run_module.run(argv, "push manifest list", echo=False)
    assert (caught.value.message, caught.value.argv, caught.value.output) == (
        "push manifest list failed (exit 3)", argv, "step 1\nstep 2\n"
    )


def test_run_without_docker_installed(monkeypatch):
    def missing(argv, **options):
        raise FileNotFoundError(2, "No such file or directory")

    monkeypatch.setattr(run_module, "subprocess", SimpleNamespace(Popen=missing, PIPE=-1,
                                                                  STDOUT=-2))
    with pytest.raises(DockerError, match="^build demo: cannot run docker: No such file"):
        run_module.run(["docker", "build", "."], "build demo", echo=False)
