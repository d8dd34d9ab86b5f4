"""builders.engine.nodes: what an ssh:// node's failed ping says, from the docker CLI's words."""

import pytest
from multiarch.builders.engine.nodes import ssh_reason

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
