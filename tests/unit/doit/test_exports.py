"""builders.stages.argv (exports) and tasks.exports task dicts, as doit loads them; no engine."""

import hashlib
from dataclasses import replace
from pathlib import Path

import pytest
from doit.control import TaskControl
from doit.exceptions import TaskFailed
from doit.loader import load_tasks
from multiarch.builders.errors import DockerError
from multiarch.builders.stages import export
from multiarch.builders.stages.argv import export_argv
from multiarch.tasks.doit import exports, generate
from multiarch.tasks.model.manifest import Image, Manifest
from multiarch.tasks.model.methods import Method, Output

from tests.unit.doit.test_generate import AMD64, ARM64, ARMV7, PLATFORMS
from tests.unit.doit.test_generate import make_image as make_plain_image


def make_image(tmp_path: Path, name: str = "demo", outputs=(), **fields) -> Image:
    method = Method(outputs=tuple(outputs) or (Output("registry"),))
    return make_plain_image(tmp_path, name, **{"method": method, **fields})


def doit_tasks(tmp_path: Path, *images: Image) -> dict:
    manifest = Manifest(tmp_path / "multiarch.yaml", "localhost:5000", PLATFORMS, images)
    run = generate.Run.of(manifest, verify=False)
    tasks = load_tasks({
        "DOIT_CONFIG": {},
        "task_build": lambda: generate.build_tasks(run),
        "task_push": lambda: generate.push_tasks(run),
        "task_manifest": lambda: generate.manifest_tasks(run),
        "task_export": lambda: exports.export_tasks(run),
        "task_registries": lambda: generate.registries_task(run),
    })
    TaskControl(tasks)  # raises InvalidTask for a task_dep naming no task, or shared targets
    return {task.name: task for task in tasks if task.name.startswith("export")}


def test_docker_tar_of_one_platform(tmp_path):
    image = make_image(tmp_path)
    output = Output("docker", "out/demo-{arch}.tar")
    dest = tmp_path / "out" / "demo-arm64.tar"
    assert export_argv(image, output, [ARM64], dest) == [
        "docker", "buildx", "build", "--pull", "--platform", "linux/arm64",
        "-f", str(image.dockerfile), "-t", "localhost:5000/demo:v1-arm64",
        "--output", f"type=docker,dest={dest}", str(image.context),
    ]


def test_loads_name_the_list_tags_for_every_platform(tmp_path):
    image = make_image(tmp_path, pull=False, build_args=(("VERSION", "1.2"),), target="run",
                       tags=("v1", "latest"))
    for kind in ("docker", "image"):
        assert export_argv(image, Output(kind), list(PLATFORMS), None) == [
            "docker", "buildx", "build", "--platform", "linux/amd64,linux/arm64,linux/arm/v7",
            "-f", str(image.dockerfile), "--build-arg", "VERSION=1.2", "--target", "run",
            "-t", "localhost:5000/demo:v1", "-t", "localhost:5000/demo:latest",
            "--output", "type=docker", str(image.context),
        ]


@pytest.mark.parametrize("kind, tagged", [("oci", True), ("local", False), ("tar", False)])
def test_file_exporters(tmp_path, kind, tagged):
    image = make_image(tmp_path)
    dest = tmp_path / "out" / kind
    argv = export_argv(image, Output(kind, f"out/{kind}"), [AMD64, ARM64], dest)
    tags = ["-t", "localhost:5000/demo:v1"] if tagged else []
    assert argv == [
        "docker", "buildx", "build", "--pull", "--platform", "linux/amd64,linux/arm64",
        "-f", str(image.dockerfile), *tags, "--output", f"type={kind},dest={dest}",
        str(image.context),
    ]


def test_cacheonly_and_attestations(tmp_path):
    image = make_image(tmp_path, method=Method(attestations="false"))
    argv = export_argv(image, Output("cacheonly"), [AMD64], None)
    assert argv[argv.index("--output"):] == ["--output", "type=cacheonly", str(image.context)]
    assert "--provenance=false" in argv and "-t" not in argv


def test_per_platform_dockerfile_and_arch_build_arg(tmp_path):
    image = make_image(tmp_path)
    other = image.context / "Dockerfile.arm64"
    other.write_text("FROM arm64v8/busybox:1.35\n")
    image = replace(image, method=Method(dockerfiles=((ARM64, other),), arch="build-arg"))
    argv = export_argv(image, Output("tar", "x.tar"), [ARM64], tmp_path / "x.tar")
    assert argv[argv.index("-f") + 1] == str(other)
    assert "ARCH=arm64v8" in argv
    assert export.one_per_platform(image, Output("tar", "x.tar"))


def test_registry_is_not_an_export(tmp_path):
    with pytest.raises(ValueError, match="registry is pushed by the build"):
        export_argv(make_image(tmp_path), Output("registry"), [AMD64], None)


def test_dest_placeholders_render_like_buildx(tmp_path):
    output = Output("local", "out/{platform}/rootfs-{arch}")
    assert output.per_platform
    assert output.path(tmp_path, ARMV7) == tmp_path / "out/linux_arm_v7/rootfs-armv7"
    assert output.path(tmp_path, ARM64) == tmp_path / "out/linux_arm64/rootfs-arm64"
    assert not Output("oci", "out/demo.tar").per_platform


def test_task_names_targets_and_clean(tmp_path):
    image = make_image(tmp_path, outputs=[
        Output("registry"), Output("docker", "out/demo-{arch}.tar"), Output("oci", "demo.tar"),
        Output("local", "rootfs-{platform}"), Output("tar", "fs.tar"), Output("cacheonly"),
        Output("image"),  # the manifest strategy's builds load already: no task
    ])
    tasks = doit_tasks(tmp_path, image)
    per_platform = [f"{kind}:{p}" for kind in ("docker", "local") for p in PLATFORMS]
    assert set(tasks) == {"export", *(f"export:demo:{name}" for name in [
        *per_platform, "oci", "tar", "cacheonly"])}
    assert tasks["export:demo:docker:linux/arm/v7"].targets == [
        str(tmp_path / "out" / "demo-armv7.tar")]
    assert tasks["export:demo:local:linux/arm64"].targets == [
        str(tmp_path / "rootfs-linux_arm64")]
    assert tasks["export:demo:oci"].targets == [str(tmp_path / "demo.tar")]
    assert tasks["export:demo:cacheonly"].targets == []
    assert tasks["export:demo:tar"]._remove_targets  # `clean: True`: doit removes the file
    local = tasks["export:demo:local:linux/arm64"]
    assert [action.py_callable for action in local.clean_actions] == [export.remove]
    assert "inputs_unchanged('demo', 'linux/arm64')" in repr(local.uptodate)
    assert local.verbosity == 2


def test_clean_removes_a_rootfs_tree(tmp_path):
    root = tmp_path / "rootfs"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "sh").write_text("x")
    export.remove(root)
    export.remove(root)  # already gone: nothing to do
    assert not root.exists()


def test_duplicate_types_bases_and_buildx_image(tmp_path):
    base = make_image(tmp_path, "base", method=Method(strategy="buildx"))
    app = make_image(tmp_path, "app", depends_on=("base",), outputs=[
        Output("tar", "a.tar"), Output("tar", "b.tar"), Output("image")])
    app = replace(app, method=replace(app.method, strategy="buildx"))
    tasks = doit_tasks(tmp_path, base, app)
    assert set(tasks) == {"export", "export:app:tar.1", "export:app:tar.2", "export:app:image"}
    assert tasks["export:app:tar.1"].task_dep == ["build:base"]
    assert tasks["export:app:image"].targets == []


def test_docker_tar_of_several_platforms_fails_in_one_line(tmp_path):
    image = make_image(tmp_path, outputs=[Output("docker", "out/demo.tar")])
    task = doit_tasks(tmp_path, image)["export:demo:docker"]
    action = task.actions[0]
    result = action.py_callable(*action.args)
    assert isinstance(result, TaskFailed)
    assert str(result.message) == (
        "multiarch.yaml: images.demo.outputs[0].dest: type docker writes one file per platform "
        "here; put {arch} or {platform} in 'out/demo.tar'")
    one = make_image(tmp_path, platforms=(ARM64,), outputs=[Output("docker", "out/demo.tar")])
    assert set(doit_tasks(tmp_path, one)) == {"export", "export:demo:docker:linux/arm64"}


def test_export_returns_the_files_digest(tmp_path, monkeypatch):
    dest = tmp_path / "out" / "demo.tar"
    seen = []

    def fake_run(argv, what, prefix=""):
        seen.append(argv)
        dest.write_bytes(b"tarball")
        return ""

    monkeypatch.setattr(export, "run", fake_run)
    result = export.export(make_image(tmp_path), Output("oci", "out/demo.tar"), [AMD64], dest)
    assert result == {"type": "oci", "dest": str(dest), "platforms": ["linux/amd64"],
                      "digest": "sha256:" + hashlib.sha256(b"tarball").hexdigest()}
    assert seen[0][-2] == f"type=oci,dest={dest}"


def test_a_failed_export_leaves_nothing(tmp_path, monkeypatch):
    dest = tmp_path / "demo.tar"

    def refuse(argv, what, prefix=""):
        dest.write_bytes(b"")
        raise DockerError(f"{what} failed (exit 1)", argv, "ERROR: docker exporter does not "
                          "support exporting manifest lists, use the oci exporter instead")

    monkeypatch.setattr(export, "run", refuse)
    with pytest.raises(DockerError, match="a docker tar holds one platform"):
        export.export(make_image(tmp_path), Output("docker", "demo.tar"), [AMD64, ARM64], dest)
    assert not dest.exists()
