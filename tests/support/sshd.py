"""An ssh:// builder node for tests: Debian's sshd in a network namespace (RemoteHost), with
a keypair, host key, sshd_config and known_hosts that the test makes for itself in a tmp dir.

The "remote" engine behind sshd is the node engine (tests/support/nodes.py): a unix socket is
reachable from any network namespace, so the ssh'd user's `docker system dial-stdio` dials it
(DOCKER_HOST set by sshd's SetEnv), and it keeps the registry mirror on the host's loopback.

ssh finds ~ from the passwd entry, not $HOME, so root's ~/.ssh is never touched: the client
side is an `ssh` on PATH (a script in the tmp dir) that runs /usr/bin/ssh with the test's
config (`-F`): identity, known_hosts, StrictHostKeyChecking yes. The docker CLI and the SDK both
run whatever `ssh` PATH finds.
"""

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from .netns import RemoteHost
from .nodes import NODE

ADDRESS = "10.77.0.3"
USER = "builder"  # scripts/engine makes it, in the group that may use the node's socket
SSH_NODE = f"ssh://{USER}@{ADDRESS}"


def _keygen(path: Path, comment: str) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path],
                   check=True, capture_output=True)


class SshNode:
    """sshd for ``USER`` at ``ADDRESS``; ``env`` is what a client process needs (PATH)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.host = RemoteHost(name="ma-ssh", address=ADDRESS)
        self.key = folder / "id_ed25519"
        self.host_key = folder / "ssh_host_ed25519_key"
        self.process: subprocess.Popen | None = None

    def setup(self) -> "SshNode":
        self.folder.mkdir(parents=True, exist_ok=True)
        _keygen(self.key, "multiarch-test-client")
        _keygen(self.host_key, "multiarch-test-host")
        authorized = self.folder / "authorized_keys"
        authorized.write_text(Path(f"{self.key}.pub").read_text())
        # sshd reads the authorized keys as USER: the folder (made by mkdtemp, outside pytest's
        # 0700 tmp) is readable; the private keys in it stay 0600, root's.
        for path in (self.folder, authorized):
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        (self.folder / "sshd_config").write_text("\n".join([
            f"ListenAddress {ADDRESS}",
            f"HostKey {self.host_key}",
            f"AuthorizedKeysFile {authorized}",
            f"AllowUsers {USER}",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes",
            "UsePAM no",
            "StrictModes no",  # /tmp, above the authorized keys, is world-writable
            f"PidFile {self.folder / 'sshd.pid'}",
            f"SetEnv DOCKER_HOST={NODE}",
            "LogLevel INFO", ""]))
        host_public = Path(f"{self.host_key}.pub").read_text().split()
        (self.folder / "known_hosts").write_text(f"{ADDRESS} {host_public[0]} {host_public[1]}\n")
        client = [f"Host {ADDRESS}",
                  f"  IdentityFile {self.key}",
                  "  IdentitiesOnly yes",
                  f"  UserKnownHostsFile {self.folder / 'known_hosts'}",
                  "  GlobalKnownHostsFile /dev/null",
                  "  StrictHostKeyChecking yes",
                  "  BatchMode yes",
                  "  LogLevel ERROR"]
        # The same, with one connection that every session shares (and keeps for 60 s).
        multiplexed = [*client, "  ControlMaster auto", f"  ControlPath {self.folder}/cm-%C",
                       "  ControlPersist 60"]
        for name, lines in (("", client), ("-mux", multiplexed)):
            config = self.folder / f"ssh_config{name}"
            config.write_text("\n".join(lines) + "\n")
            bin_dir = self.folder / f"bin{name}"
            bin_dir.mkdir(exist_ok=True)
            wrapper = bin_dir / "ssh"
            wrapper.write_text(f'#!/bin/sh\nexec /usr/bin/ssh -F {config} "$@"\n')
            wrapper.chmod(0o755)
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation dir
        self.host.up()
        return self

    @property
    def env(self) -> dict[str, str]:
        """A client's environment: `ssh` on PATH is this node's, a new connection a session."""
        return {"PATH": f"{self.folder / 'bin'}{os.pathsep}{os.environ['PATH']}"}

    @property
    def env_multiplexed(self) -> dict[str, str]:
        """The same with ssh's ControlMaster/ControlPersist: sessions share one connection."""
        return {"PATH": f"{self.folder / 'bin-mux'}{os.pathsep}{os.environ['PATH']}"}

    def start(self) -> None:
        """Run sshd in the namespace; return once it accepts connections."""
        self.process = self.host.start("/usr/sbin/sshd", "-D", "-e", "-f",
                                       str(self.folder / "sshd_config"),
                                       log=self.folder / "sshd.log")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection((ADDRESS, 22), timeout=1).close()
                return
            except OSError:
                assert self.process.poll() is None, (self.folder / "sshd.log").read_text()
                time.sleep(0.1)
        raise RuntimeError(f"sshd did not listen on {ADDRESS}:22; see {self.folder}/sshd.log")

    def stop(self) -> None:
        """Stop sshd (the namespace stays: a connection is refused at once)."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        if self.process in self.host.processes:
            self.host.processes.remove(self.process)
        self.process = None

    def pause(self) -> None:
        """SIGSTOP sshd (`ip netns exec` became it): the kernel still accepts connections, but
        no banner ever comes, as from a hung host."""
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)

    def secrets(self) -> list[str]:
        """Lines of the private key files, which no output or state file may hold."""
        return [line for path in (self.key, self.host_key)
                for line in path.read_text().splitlines()
                if line and not line.startswith("-----")]

    def down(self) -> None:
        for master in self.folder.glob("cm-*"):  # a ControlPersist master still waiting
            subprocess.run(["/usr/bin/ssh", "-F", str(self.folder / "ssh_config-mux"), "-O",
                            "exit", "-o", f"ControlPath={master}", ADDRESS],
                           capture_output=True, timeout=10)
        self.stop()
        self.host.down()
