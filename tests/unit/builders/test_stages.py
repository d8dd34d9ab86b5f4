"""builders: every docker argv, the pick out of `manifest inspect`, DockerError; no engine."""

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
from multiarch.builders.stages.argv import (
    annotate_argv,
    build_argv,
    create_argv,
    inspect_argv,
    push_argv,
    rm_argv,
)
from multiarch.builders.stages.manifest_list import needs_insecure, select_child
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


# ---------------------------------------------------------------- manifest list argv

LIST = "localhost:5000/demo:v1"
CHILDREN = [f"{REPO}@{digest('a')}", f"{REPO}@{digest('b')}"]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (inspect_argv(LIST, False), ["docker", "manifest", "inspect", "--verbose", LIST]),
        (
            inspect_argv(LIST, True),
            ["docker", "manifest", "inspect", "--verbose", "--insecure", LIST],
        ),
        (rm_argv(LIST), ["docker", "manifest", "rm", LIST]),
        (create_argv(LIST, CHILDREN, False), ["docker", "manifest", "create", LIST, *CHILDREN]),
        (
            create_argv(LIST, CHILDREN, True),
            ["docker", "manifest", "create", "--insecure", LIST, *CHILDREN],
        ),
        (
            annotate_argv(LIST, CHILDREN[0], ARM64),
            ["docker", "manifest", "annotate", "--os", "linux", "--arch", "arm64",
             LIST, CHILDREN[0]],
        ),
        (
            annotate_argv(LIST, CHILDREN[1], ARMV7),
            ["docker", "manifest", "annotate", "--os", "linux", "--arch", "arm",
             "--variant", "v7", LIST, CHILDREN[1]],
        ),
        (push_argv(LIST, False), ["docker", "manifest", "push", "--purge", LIST]),
        (push_argv(LIST, True), ["docker", "manifest", "push", "--purge", "--insecure", LIST]),
    ],
    ids=["inspect", "inspect-insecure", "rm", "create", "create-insecure", "annotate",
         "annotate-variant", "push", "push-insecure"],
)
def test_manifest_list_argv(argv, expected):
    assert argv == expected


@pytest.mark.parametrize(
    ("repository", "expected"),
    [
        ("localhost:5000/x", True),
        ("127.0.0.1:5000/x", True),
        ("[::1]:5000/x", True),
        ("localhost/x", True),
        ("registry.example.com/x", False),
        ("10.77.0.2:5000/x", False),
        ("localhost.example.com:5000/x", False),
        ("demo", False),
    ],
)
def test_needs_insecure(repository, expected):
    assert needs_insecure(repository) is expected


# ---------------------------------------------------------------- select_child
# Shapes of `docker manifest inspect --verbose`: a dict for a plain manifest, a list of
# entries for an index (what a push from the containerd image store produces).

def entry(char: str, os: str, architecture: str, variant: str | None = None) -> dict:
    platform = {"architecture": architecture, "os": os}
    if variant:
        platform["variant"] = variant
    return {
        "Ref": f"{REPO}:v1-arm64@{digest(char)}",
        "Descriptor": {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest(char),
            "size": 1054,
            "platform": platform,
        },
        "Raw": "eyJzY2hlbWFWZXJzaW9uIjoyfQ==",
        "OCIManifest": {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": digest("c"), "size": 611},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": digest("d"), "size": 3348}],
        },
    }


def attestation(char: str, of: str) -> dict:
    item = entry(char, "unknown", "unknown")
    item["Descriptor"]["annotations"] = {
        "vnd.docker.reference.digest": digest(of),
        "vnd.docker.reference.type": "attestation-manifest",
    }
    return item


SINGLE = {
    "Ref": f"{REPO}:v1-arm64",
    "Descriptor": {
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "digest": digest("1"),
        "size": 528,
        "platform": {"architecture": "arm64", "os": "linux"},
    },
    "SchemaV2Manifest": {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "digest": digest("c"), "size": 611},
        "layers": [],
    },
}


@pytest.mark.parametrize(
    ("inspected", "platform", "expected"),
    [
        (SINGLE, ARM64, digest("1")),
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
    ids=["single-manifest", "image+attestation", "attestation-first", "arm64-v8",
         "arm-without-variant", "two-platforms-v7", "two-platforms-amd64", "v6-or-v7",
         "one-image-other-platform"],
)
def test_select_child(inspected, platform, expected):
    assert select_child(inspected, platform, f"{REPO}:v1-x")["digest"] == expected


@pytest.mark.parametrize(
    ("inspected", "found"),
    [
        (
            [entry("1", "linux", "amd64"), entry("2", "linux", "s390x"),
             attestation("3", of="1")],
            "linux/amd64, linux/s390x",
        ),
        ([attestation("3", of="1")], "none"),
    ],
    ids=["two-other-images", "attestation-only"],
)
def test_select_child_without_a_single_image_names_ref_platform_and_found(inspected, found):
    ref = f"{REPO}:v1-arm64"
    with pytest.raises(DockerError) as caught:
        select_child(inspected, ARM64, ref)
    assert str(caught.value) == f"{ref} has no single image for linux/arm64 (found: {found})"


# ---------------------------------------------------------------- publish, with a fake run

LIST_DIGEST = digest("f")
PLATFORM_DIGEST = {"amd64": "a", "armv7": "7"}


def fake_docker(calls: list, fail_inspect: str | None = None):
    """A stand-in for builders.engine.cli.run answering like the docker CLI would."""

    def run(argv, what, prefix="", echo=True):
        calls.append(argv)
        verb, ref = argv[2], argv[-1]
        if verb == "inspect":
            suffix = ref.rsplit("-", 1)[1]
            if suffix == fail_inspect:
                raise DockerError(f"inspect {ref} failed (exit 1)", argv, "no such manifest")
            char = PLATFORM_DIGEST[suffix]
            arch = ("arm", "v7") if suffix == "armv7" else ("amd64",)
            return json.dumps([entry(char, "linux", *arch), attestation("0", of=char)])
        if verb == "rm":
            raise DockerError("remove failed (exit 1)", argv, f"No such manifest: {ref}")
        if verb == "push":
            return f"Pushed ref {REPO}@{digest('a')} with digest: {digest('a')}\n{LIST_DIGEST}\n"
        return ""

    return run


def test_publish_resolves_then_creates_annotates_and_pushes(monkeypatch):
    calls = []
    monkeypatch.setattr(manifest_list, "run", fake_docker(calls))
    image = replace(IMAGE, platforms=(AMD64, ARMV7))
    amd64, armv7 = f"{REPO}@{digest('a')}", f"{REPO}@{digest('7')}"
    result = manifest_list.publish(image)
    assert calls == [
        inspect_argv(f"{REPO}:v1-amd64", True),
        inspect_argv(f"{REPO}:v1-armv7", True),
        rm_argv(LIST),
        create_argv(LIST, [amd64, armv7], True),
        annotate_argv(LIST, amd64, AMD64),
        annotate_argv(LIST, armv7, ARMV7),
        push_argv(LIST, True),
    ]
    assert result == {
        "lists": {LIST: LIST_DIGEST},
        "children": {"linux/amd64": amd64, "linux/arm/v7": armv7},
    }


def test_publish_with_a_missing_platform_publishes_nothing(monkeypatch):
    calls = []
    monkeypatch.setattr(manifest_list, "run", fake_docker(calls, fail_inspect="armv7"))
    image = replace(IMAGE, platforms=(AMD64, ARMV7), tags=("v1", "latest"))
    with pytest.raises(DockerError, match="inspect localhost:5000/demo:v1-armv7"):
        manifest_list.publish(image)
    assert [argv[2] for argv in calls] == ["inspect", "inspect"]


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
