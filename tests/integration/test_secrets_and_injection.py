"""Secrets reach the build through BuildKit mounts only; shell-looking values stay inert."""

import subprocess
from pathlib import Path

import yaml

from tests.conftest import docker

TOKEN = "tok-3f9c1e7a-never-in-a-layer"


def test_a_secret_reaches_the_build_but_no_layer_log_or_state(workspace, tmp_path_factory):
    workspace.context("app", "FROM busybox:1.35\n"
                      "RUN --mount=type=secret,id=token wc -c < /run/secrets/token"
                      " > /token-length\n")
    (workspace.path / "token.txt").write_text(TOKEN)
    path = workspace.manifest({"app": {"context": "app", "tags": ["v1"],
                                       "secrets": {"token": "token.txt"}}}, ["linux/amd64"])
    ref = f"localhost:5000/{workspace.namespace}/app:v1"

    result = workspace.doit("build")

    assert docker("run", "--rm", "--pull", "always", ref, "cat", "/token-length").strip() == \
        str(len(TOKEN))
    saved = tmp_path_factory.mktemp("save") / "app.tar"
    docker("save", "-o", str(saved), ref)
    tar = subprocess.run(["tar", "-xOf", str(saved)], capture_output=True).stdout
    for blob in (tar, result.stdout.encode(), result.stderr.encode(), path.read_bytes()):
        assert TOKEN.encode() not in blob
    for state in (workspace.path / ".multiarch").rglob("*"):
        if state.is_file():
            assert TOKEN.encode() not in state.read_bytes(), state


def test_shell_looking_build_args_are_inert(workspace):
    marker = Path(f"/tmp/multiarch-pwned-{workspace.namespace}")
    value = f"$(touch {marker}); `touch {marker}`; v1; rm -rf /nonexistent"
    workspace.context("app", "FROM busybox:1.35\nARG NOTE\nRUN echo \"$NOTE\" > /note\n")
    workspace.manifest({"app": {"context": "app", "tags": ["v1"], "build_args": {"NOTE": value}}},
                       ["linux/amd64"])
    ref = f"localhost:5000/{workspace.namespace}/app:v1"

    workspace.doit("build")

    assert not marker.exists()
    assert docker("run", "--rm", "--pull", "always", ref, "cat", "/note") == value + "\n"


def test_a_shell_looking_tag_is_rejected_before_any_docker_command(workspace):
    workspace.context("app", "FROM busybox:1.35\n")
    path = workspace.manifest({"app": {"context": "app", "tags": ["v1"]}}, ["linux/amd64"])
    document = yaml.safe_load(path.read_text())
    document["images"]["app"]["tags"] = ["v1; rm -rf /"]
    path.write_text(yaml.safe_dump(document))

    result = workspace.doit("build", check=False)

    assert result.returncode == 2
    assert result.stderr.startswith("multiarch: multiarch.yaml: images.app.tags[0]: invalid tag")
    assert "$ docker" not in result.stdout
