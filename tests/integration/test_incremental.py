"""What a change rebuilds: sent bytes do, mtimes and .dockerignore'd files do not."""

import os

from tests.conftest import raw_manifest

PLATFORMS = ["linux/amd64", "linux/arm64"]


def ran(result) -> list[str]:
    return sorted(line.split()[1] for line in result.stdout.splitlines() if line.startswith(".  ")
                  and not line.startswith(".  registries"))


def test_only_sent_bytes_rebuild(workspace):
    context = workspace.context("web", "FROM busybox:1.35\nCOPY . /srv/\n")
    (context / "index.html").write_text("<h1>one</h1>\n")
    (context / "notes.log").write_text("not sent\n")
    (context / ".dockerignore").write_text("*.log\n")
    workspace.manifest({"web": {"context": "web", "tags": ["v1"]}}, PLATFORMS)
    workspace.doit("build")
    list_ref = f"localhost:5000/{workspace.namespace}/web:v1"
    first = raw_manifest(list_ref)

    os.utime(context / "index.html")
    (context / "notes.log").write_text("changed, still not sent\n")
    assert ran(workspace.doit("build")) == []

    (context / "index.html").write_text("<h1>two</h1>\n")
    assert ran(workspace.doit("build")) == sorted(
        [f"{stage}:web:{p}" for stage in ("build", "push") for p in PLATFORMS]
        + ["manifest:web", "build:web"]
    )
    second = raw_manifest(list_ref)
    assert {m["digest"] for m in first["manifests"]}.isdisjoint(
        m["digest"] for m in second["manifests"])
