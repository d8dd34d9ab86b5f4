"""builders.engine.nodes: what an ssh:// node's failed ping says, from the docker CLI's words."""

import pytest
from multiarch.builders.engine.client import sdk
from multiarch.builders.engine.nodes import node_host, ping, ssh_reason
from multiarch.tasks.model.routing import Node

CLI = ('error during connect: Get "http://docker.example.com/v1.50/version": command [ssh -o '
       'ConnectTimeout=30 -T -l builder -- 10.77.0.3 docker system dial-stdio] has exited with '
       'exit status 255, make sure the URL is valid, and Docker 18.09 or later is installed on '
       'the remote host: stderr=')


@pytest.mark.parametrize("stderr, reason", [
    (CLI + "ssh: connect to host 10.77.0.3 port 22: Connection refused\n\n",
     "Connection refused"),
    (CLI + "ssh: connect to host 10.77.0.3 port 22: No route to host\n", "No route to host"),
    (CLI + "Host key verification failed.\n", "Host key verification failed."),
    (CLI + "builder@10.77.0.3: Permission denied (publickey).\n",
     "builder@10.77.0.3: Permission denied (publickey)."),
    ("", "docker version failed"),
])
def test_ssh_reason_keeps_ssh_s_own_words(stderr, reason):
    assert ssh_reason(stderr) == reason


def test_a_context_node_is_pinged_where_its_context_points(tmp_path, monkeypatch):
    """An ssh:// context is pinged like an ssh:// docker_host (the CLI, bounded), so its
    endpoint is read from the CLI's context store."""
    (tmp_path / "config.json").write_text("{}")  # else the SDK falls back to ~/.docker
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)
    sdk().ContextAPI.create_context("arm", host="ssh://builder@10.77.0.3")
    assert node_host(Node(context="arm")) == "ssh://builder@10.77.0.3:22"
    assert node_host(Node()) == "unix:///var/run/docker.sock"
    monkeypatch.setenv("DOCKER_CONTEXT", "arm")
    assert node_host(Node()) == "ssh://builder@10.77.0.3:22"
    assert node_host(Node(docker_host="tcp://n:2376")) == "tcp://n:2376"
    assert ping(Node(context="gone")) == "no docker context 'gone' (see `docker context ls`)"
