"""An outside base re-pushed for one platform rebuilds just that platform of what uses it."""

import pytest

from tests.conftest import docker

PLATFORMS = ["linux/amd64", "linux/arm64"]
SUFFIX = {"linux/amd64": "amd64", "linux/arm64": "arm64"}


def ran_builds(result) -> list[str]:
    """The per-platform builds doit ran (`build:<image>` only inspects the lists)."""
    return sorted(name for name in (line.split()[1] for line in result.stdout.splitlines()
                                    if line.startswith(".  build:")) if name.count(":") == 2)


def publish_upstream(workspace, platform: str, text: str) -> None:
    """Push ``platform``'s image of an upstream base and (re)make its list, by hand."""
    upstream = f"localhost:5000/{workspace.namespace}/upstream"
    context = workspace.context(f"upstream-{SUFFIX[platform]}",
                                "FROM busybox:1.35\nCOPY upstream.txt /upstream.txt\n")
    (context / "upstream.txt").write_text(text)
    ref = f"{upstream}:1-{SUFFIX[platform]}"
    docker("build", "--provenance=false", "--platform", platform, "-t", ref, str(context))
    docker("push", "-q", ref)
    children = [f"{upstream}:1-{SUFFIX[p]}" for p in PLATFORMS]
    if all(_exists(child) for child in children):
        docker("manifest", "create", "--insecure", f"{upstream}:1", *children)
        docker("manifest", "push", "--purge", "--insecure", f"{upstream}:1")


def _exists(ref: str) -> bool:
    try:
        docker("manifest", "inspect", "--insecure", ref)
    except AssertionError:
        return False
    return True


@pytest.mark.parametrize("pull", [True, False])
def test_base_drift(workspace, pull):
    for platform in PLATFORMS:
        publish_upstream(workspace, platform, f"upstream one {platform}\n")
    upstream = f"localhost:5000/{workspace.namespace}/upstream:1"
    workspace.context("app", f"FROM {upstream}\nCMD [\"cat\", \"/upstream.txt\"]\n")
    workspace.manifest({"app": {"context": "app", "pull": pull}}, PLATFORMS)
    workspace.doit("build")

    publish_upstream(workspace, "linux/arm64", "upstream two\n")
    status = workspace.doit("status").stdout
    result = workspace.doit("build")

    if pull:
        assert (f"app linux/arm64: rebuild: stage 0: FROM {upstream} (linux/arm64) now points"
                " at") in status
        assert "app linux/amd64: up to date" in status
        assert ran_builds(result) == ["build:app:linux/arm64"]
        app = f"localhost:5000/{workspace.namespace}/app:latest"
        assert docker("run", "--rm", "--pull", "always", "--platform", "linux/arm64",
                      app) == "upstream two\n"
    else:
        assert ran_builds(result) == []
