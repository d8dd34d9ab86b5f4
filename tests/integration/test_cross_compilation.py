"""Dockerfiles written as Docker's multi-platform guide recommends, on the real engine: a
`$BUILDPLATFORM` build stage, a quoted global ARG naming the base, `RUN --mount=from`."""

import pytest

from tests.conftest import docker
from tests.integration.test_base_drift import PLATFORMS, publish_upstream, ran_builds

pytestmark = pytest.mark.engine

CROSS = """\
FROM --platform=$BUILDPLATFORM {upstream} AS build
ARG TARGETARCH
RUN cat /upstream.txt > /built && echo "$TARGETARCH" >> /built
FROM {upstream}
COPY --from=build /built /built
CMD ["cat", "/built"]
"""


def run_on(ref: str, platform: str) -> str:
    return docker("run", "--rm", "--pull", "always", "--platform", platform, ref)


def test_drift_of_a_build_platform_base_rebuilds_exactly_the_platforms_that_pull_it(workspace):
    for platform in PLATFORMS:
        publish_upstream(workspace, platform, f"one {platform}\n")
    upstream = f"localhost:5000/{workspace.namespace}/upstream:1"
    workspace.context("app", CROSS.format(upstream=upstream))
    workspace.manifest({"app": {"context": "app"}}, PLATFORMS)
    workspace.doit("build")
    app = f"localhost:5000/{workspace.namespace}/app:latest"
    assert run_on(app, "linux/arm64") == "one linux/amd64\narm64\n"

    # The amd64 child moves: every platform's build stage ran on it.
    publish_upstream(workspace, "linux/amd64", "two\n")
    status = workspace.doit("status").stdout
    for platform in PLATFORMS:
        assert (f"app {platform}: rebuild: stage build: FROM {upstream} (linux/amd64) now points"
                f" at sha256:") in status
    assert ran_builds(workspace.doit("build")) == ["build:app:linux/amd64",
                                                  "build:app:linux/arm64"]
    assert run_on(app, "linux/arm64") == "two\narm64\n"
    assert run_on(app, "linux/amd64") == "two\namd64\n"

    # The arm64 child moves: only the arm64 image's final stage pulls it.
    publish_upstream(workspace, "linux/arm64", "three\n")
    status = workspace.doit("status").stdout
    assert "app linux/amd64: up to date" in status
    assert f"app linux/arm64: rebuild: stage 1: FROM {upstream} (linux/arm64) now points" in status
    assert ran_builds(workspace.doit("build")) == ["build:app:linux/arm64"]
    assert workspace.doit("build").stdout.count(".  build:app:") == 0


def test_a_quoted_arg_and_a_mount_from_order_the_builds_and_follow_the_base(workspace):
    base = f"localhost:5000/{workspace.namespace}/base:latest"
    context = workspace.context("base", "FROM busybox:1.35\nCOPY base.txt /base.txt\n")
    (context / "base.txt").write_text("base one\n")
    workspace.context("app", f'ARG BASE="{base}"\nFROM ${{BASE}} AS runtime\n'
                             'CMD ["cat", "/base.txt"]\n')
    workspace.context("tool", "FROM busybox:1.35\n"
                              f"RUN --mount=type=bind,from={base},target=/m cp /m/base.txt /copy\n"
                              'CMD ["cat", "/copy"]\n')
    # Listed before their base, on a namespace nothing was pushed to: only the order that
    # the Dockerfiles imply lets the first run succeed.
    workspace.manifest({"app": {"context": "app"}, "tool": {"context": "tool"},
                        "base": {"context": "base"}}, PLATFORMS)
    listed = workspace.doit("info", "build:tool:linux/arm64", check=False).stdout
    assert "task_dep   : \n - manifest:base\n" in listed
    workspace.doit("build")
    for name in ("app", "tool"):
        ref = f"localhost:5000/{workspace.namespace}/{name}:latest"
        assert run_on(ref, "linux/arm64") == "base one\n"

    (context / "base.txt").write_text("base two\n")
    ran = ran_builds(workspace.doit("build"))
    assert ran == sorted(f"build:{name}:{platform}" for name in ("app", "base", "tool")
                         for platform in PLATFORMS)
    for name in ("app", "tool"):
        ref = f"localhost:5000/{workspace.namespace}/{name}:latest"
        assert run_on(ref, "linux/amd64") == "base two\n"
