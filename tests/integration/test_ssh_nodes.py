"""An ssh:// builder node (issue #19): Debian's sshd in a network namespace at 10.77.0.3, key
authentication made here, and behind it the node engine (dockerd 20.10) that the ssh'd user's
`docker system dial-stdio` reaches (tests/support/sshd.py). Only this test's sshd is stopped."""

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from multiarch.builders.engine.client import close, reach
from multiarch.tasks.model.routing import Node

from tests.conftest import raw_manifest, require_classic
from tests.integration.test_routing import (
    assert_app_listed,
    cleanup,
    routed_manifest,
    tags_on,
)
from tests.support import nodes
from tests.support.sshd import SSH_NODE, SshNode

pytestmark = pytest.mark.engine
PLATFORMS = ["linux/amd64", "linux/arm64"]


@pytest.fixture(scope="module")
def ssh_node(engine):
    require_classic()
    nodes.require_node()
    if not Path("/usr/sbin/sshd").exists():
        pytest.skip("no /usr/sbin/sshd: run `scripts/engine up` (openssh-server)")
    node = SshNode(Path(tempfile.mkdtemp(prefix="multiarch-ssh-"))).setup()
    node.start()
    yield node
    node.down()
    shutil.rmtree(node.folder, ignore_errors=True)


@pytest.fixture
def sshd_stopped(ssh_node):
    ssh_node.stop()
    yield ssh_node
    ssh_node.start()


def app(ws) -> None:
    ws.context("app", f"FROM busybox:1.35\nRUN echo {ws.namespace}\nCMD [\"uname\", \"-m\"]\n")


def assert_no_secrets(ws, node: SshNode, *outputs: str) -> None:
    """No line of a private key in the run's output or in anything under .multiarch/."""
    texts = list(outputs)
    for path in (ws.path / ".multiarch").rglob("*"):
        if path.is_file():
            texts.append(path.read_bytes().decode("utf-8", "replace"))
    secrets = node.secrets()
    assert secrets
    for text in texts:
        assert not any(secret in text for secret in secrets)
    assert not any("PRIVATE KEY" in text for text in texts)


def test_an_ssh_node_builds_and_pushes_its_platform(workspace, ssh_node):
    ws = workspace
    app(ws)
    routed_manifest(ws, {"app": {"context": "app"}}, PLATFORMS,
                    {"linux/arm64": {"docker_host": SSH_NODE, "emulate": False}})
    try:
        started = time.monotonic()
        result = ws.doit("-n", "2", "build", env=ssh_node.env)
        print(f"routed build over ssh: {time.monotonic() - started:.1f} s")
        assert f"[app linux/arm64] $ DOCKER_HOST={SSH_NODE} docker build" in result.stdout
        # Built by the engine behind sshd: the node holds the arm64 tag, the report says so.
        assert tags_on(nodes.NODE, f"{ws.namespace}/app") == {"latest-arm64"}
        assert_app_listed(ws, PLATFORMS, {"linux/amd64": "default", "linux/arm64": SSH_NODE})
        assert_no_secrets(ws, ssh_node, result.stdout, result.stderr)
    finally:
        cleanup(ws, ["app"])


def test_emulate_false_fails_fast_when_sshd_is_stopped(workspace, sshd_stopped):
    ws = workspace
    app(ws)
    routed_manifest(ws, {"app": {"context": "app"}}, PLATFORMS,
                    {"linux/arm64": {"docker_host": SSH_NODE, "emulate": False}})
    started = time.monotonic()
    result = ws.doit("build:app:linux/arm64", check=False, env=sshd_stopped.env)
    elapsed = time.monotonic() - started
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert elapsed < 10, elapsed
    assert (f"linux/arm64: builder {SSH_NODE} is unreachable (Connection refused); "
            "emulate: false forbids a local QEMU build") in output
    assert "docker build" not in result.stdout
    assert "ssh: connect to host" not in output  # ssh's own line is not let through
    assert raw_manifest(f"localhost:5000/{ws.namespace}/app:latest") is None
    assert_no_secrets(ws, sshd_stopped, result.stdout, result.stderr)


@pytest.fixture
def ssh_context(ssh_node, workspace):
    """A docker context of the user's whose endpoint is the ssh node."""
    name = f"{workspace.namespace}-ssh"
    subprocess.run(["docker", "context", "create", name, "--docker", f"host={SSH_NODE}"],
                   check=True, capture_output=True)
    yield name
    subprocess.run(["docker", "context", "rm", "-f", name], capture_output=True)


@pytest.mark.parametrize("how", ["docker_host", "context"])
def test_emulate_false_fails_fast_when_sshd_hangs(workspace, ssh_node, how, request):
    ws = workspace
    app(ws)
    name = SSH_NODE if how == "docker_host" else request.getfixturevalue("ssh_context")
    routed_manifest(ws, {"app": {"context": "app"}}, PLATFORMS,
                    {"linux/arm64": {how: name, "emulate": False}})
    ssh_node.pause()
    try:
        started = time.monotonic()
        result = ws.doit("build:app:linux/arm64", check=False, env=ssh_node.env)
        elapsed = time.monotonic() - started
    finally:
        ssh_node.resume()
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert elapsed < 10, elapsed  # the ping's 3 s, not ssh's ConnectTimeout=30
    assert (f"linux/arm64: builder {name} is unreachable (no answer within 3 s); "
            "emulate: false forbids a local QEMU build") in output
    assert "docker build" not in result.stdout


def test_by_default_a_stopped_ssh_node_builds_locally_under_qemu_and_says_so(workspace,
                                                                               sshd_stopped):
    ws = workspace
    app(ws)
    routed_manifest(ws, {"app": {"context": "app"}}, PLATFORMS,
                    {"linux/arm64": {"docker_host": SSH_NODE}})
    try:
        result = ws.doit("build", env=sshd_stopped.env)
        assert (f"[app linux/arm64] builder {SSH_NODE} unreachable (Connection refused); "
                "building locally under QEMU") in result.stdout
        assert tags_on(None, f"{ws.namespace}/app") == {"latest-arm64"}
        assert_app_listed(ws, PLATFORMS, {"linux/amd64": "default", "linux/arm64": "default"})
        assert_no_secrets(ws, sshd_stopped, result.stdout, result.stderr)
    finally:
        cleanup(ws, ["app"])


def zombie_children() -> list[str]:
    """This process's children that have exited and were never waited for."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid, rest = stat.read_text().split(" (", 1)
        except OSError:
            continue
        name, fields = rest.rsplit(") ", 1)
        state, ppid = fields.split()[:2]
        if state == "Z" and int(ppid) == os.getpid():
            found.append(f"{pid} {name}")
    return found


def test_a_closed_ssh_client_leaves_no_zombie_ssh_behind(ssh_node, monkeypatch):
    """The push's client for an ssh:// node opens an `ssh` per connection; closing it reaps
    them, so a long run over ssh does not pile up zombies until it exits."""
    monkeypatch.setenv("PATH", ssh_node.env["PATH"])
    before = zombie_children()
    client = reach(Node(docker_host=SSH_NODE))
    client.images.list()
    client.api.info()
    close(client)
    assert zombie_children() == before
