"""A platform that fails does not stop the others: they build and push, the failed image's
list is withheld, the run exits non-zero naming the failure, and the rerun builds only it."""

import pytest

from tests.conftest import docker, raw_manifest
from tests.integration.test_base_drift import publish_upstream, ran_builds

pytestmark = pytest.mark.engine


def test_arm64_fails_first_amd64_still_pushes_and_the_rerun_builds_only_arm64(workspace):
    # An upstream base with an amd64 image only, so far: the arm64 build cannot pull it.
    publish_upstream(workspace, "linux/amd64", "amd64 one\n")
    upstream = f"localhost:5000/{workspace.namespace}/upstream:1"
    docker("manifest", "create", "--insecure", upstream, f"{upstream}-amd64")
    docker("manifest", "push", "--purge", "--insecure", upstream)
    workspace.context("app", f"FROM {upstream}\nCMD [\"cat\", \"/upstream.txt\"]\n")
    workspace.context("other", "FROM busybox:1.35\nCMD [\"echo\", \"other\"]\n")
    # arm64 first: it fails before amd64 has started.
    workspace.manifest({"app": {"context": "app"}, "other": {"context": "other"}},
                       ["linux/arm64", "linux/amd64"])
    result = workspace.doit("build", check=False)

    assert result.returncode != 0
    assert "failed: build:app:linux/arm64\n" in result.stdout
    assert "manifest:app" in result.stdout.split("not run (")[1]
    app = f"localhost:5000/{workspace.namespace}/app"
    assert raw_manifest(f"{app}:latest-amd64") is not None  # the sibling was built and pushed
    assert raw_manifest(f"{app}:latest") is None  # no list over a missing platform
    other = raw_manifest(f"localhost:5000/{workspace.namespace}/other:latest")
    assert {m["platform"]["architecture"] for m in other["manifests"]} == {"amd64", "arm64"}

    publish_upstream(workspace, "linux/arm64", "arm64 one\n")  # the list now has both
    rerun = workspace.doit("build")
    assert ran_builds(rerun) == ["build:app:linux/arm64"]
    listed = raw_manifest(f"{app}:latest")
    assert {m["platform"]["architecture"] for m in listed["manifests"]} == {"amd64", "arm64"}


def test_no_continue_stops_at_the_first_failure(workspace):
    workspace.context("app", "FROM busybox:1.35\nARG TARGETARCH\n"
                             'RUN test "$TARGETARCH" != arm64\n')
    workspace.context("other", "FROM busybox:1.35\n")
    workspace.manifest({"app": {"context": "app"}, "other": {"context": "other"}},
                       ["linux/arm64", "linux/amd64"])
    result = workspace.doit("--no-continue", "build", check=False)
    assert result.returncode != 0
    assert "failed: build:app:linux/arm64\n" in result.stdout
    assert raw_manifest(f"localhost:5000/{workspace.namespace}/other:latest") is None
