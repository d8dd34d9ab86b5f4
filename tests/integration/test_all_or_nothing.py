"""A platform that fails publishes nothing: the registry's list stays as it was, the run says
which image and platform, and the next run builds only what failed."""

import contextlib
from pathlib import Path

from tests.conftest import raw_manifest

PLATFORMS = ["linux/amd64", "linux/arm64"]
HANDLER = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")


@contextlib.contextmanager
def no_arm64_emulation():
    """Switch the aarch64 binfmt handler off, as on a machine without QEMU for arm64."""
    HANDLER.write_text("0")
    try:
        yield
    finally:
        HANDLER.write_text("1")


def ran(result) -> list[str]:
    return sorted(line.split()[1] for line in result.stdout.splitlines() if line.startswith(".  ")
                  and not line.startswith(".  registries"))


def image(workspace, name: str, text: str) -> None:
    """A RUN step on every platform; the text is unique per test so no build cache answers."""
    text = f"{workspace.namespace} {text}"
    dockerfile = f"FROM busybox:1.35\nCOPY {name}.txt /\nRUN cat /{name}.txt\n"
    context = workspace.context(name, dockerfile)
    (context / f"{name}.txt").write_text(text)


def test_a_failed_platform_leaves_the_published_list_alone(workspace):
    image(workspace, "app", "one\n")
    workspace.manifest({"app": {"context": "app", "tags": ["v1"]}}, PLATFORMS)
    workspace.doit("build")
    list_ref = f"localhost:5000/{workspace.namespace}/app:v1"
    before = raw_manifest(list_ref)

    (workspace.path / "app" / "app.txt").write_text(f"{workspace.namespace} two\n")
    with no_arm64_emulation():
        failed = workspace.doit("-c", "build", check=False)  # amd64 too, whatever the order

    assert failed.returncode != 0
    assert "build app for linux/arm64 failed" in failed.stdout + failed.stderr
    assert raw_manifest(list_ref) == before

    again = workspace.doit("build")
    assert [name for name in ran(again) if name.startswith("build:")] == [
        "build:app", "build:app:linux/arm64"]
    assert raw_manifest(list_ref) != before


def test_keep_going_still_publishes_independent_images(workspace):
    image(workspace, "broken", "x\n")
    image(workspace, "fine", "y\n")
    workspace.manifest({"broken": {"context": "broken", "tags": ["v1"]},
                        "fine": {"context": "fine", "tags": ["v1"],
                                 "platforms": ["linux/amd64"]}}, PLATFORMS)
    repository = f"localhost:5000/{workspace.namespace}"

    with no_arm64_emulation():
        result = workspace.doit("-c", "build", check=False)

    assert result.returncode != 0
    assert raw_manifest(f"{repository}/fine:v1") is not None
    assert raw_manifest(f"{repository}/broken:v1") is None
