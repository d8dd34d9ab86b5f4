"""Reaching a builder node: a ping, the fallback when it is down, and what a failure means."""

import http.client
import os
import re
import signal
import subprocess
import threading

from ...tasks.model.platforms import Platform
from ...tasks.model.routing import Node, Routing
from ..errors import DockerError
from .api import DEFAULT_HOST, unix_get
from .cli import child_env, say
from .client import cli_env, docker_context, reach, short_reason
from .facts import is_native
from .podman import ping as podman_ping

# A node slower than this to answer a ping counts as down: `emulate: false` must fail fast.
PING_TIMEOUT = 3.0
# What the CLI says when the engine went away under a running build.
# (`ERROR: failed to receive status: rpc error: code = Unavailable desc = error reading from
# server: EOF` when dockerd stops under a BuildKit build.)
_LOST_CONNECTION = ("error reading from server", "Cannot connect to the Docker daemon",
                    "transport is closing", "code = Unavailable")

# What a TLS refusal looks like (ssl's words, or dockerd's to a client without TLS), and
# what to tell the user about it.
_TLS_REFUSALS = (
    (("alert bad certificate", "alert unknown ca", "certificate required", "alert unknown"),
     "it refused our client certificate (tls.cert, tls.key): signed by another CA?"),
    (("CERTIFICATE_VERIFY_FAILED",), "its server certificate does not verify against tls.ca"),
    # dockerd answers plain HTTP on a TLS port with 400 `Client sent an HTTP request to an
    # HTTPS server` (cut short by short_reason).
    (("HTTP request to an HTTPS server", "400 Client Error for http://"),
     "it speaks TLS: give the node tls: {ca, cert, key}"),
    (("[SSL", "SSLError", "wrong version number"), "the TLS handshake failed"),
)

_down: dict[str, str] = {}  # node name → why it did not answer, once per run
_down_lock = threading.Lock()


def ping(node: Node, timeout: float = PING_TIMEOUT) -> str | None:
    """None when ``node`` answers `/_ping` within ``timeout``; otherwise why it did not.

    A unix socket is asked directly (no SDK import); an ssh:// host (a docker_host or a
    context's) by the docker CLI, as the build will reach it; anything else through the SDK;
    a podman connection by `podman --connection <name> info`.
    """
    if node.connection:
        return podman_ping(node)
    try:
        host = node_host(node)
        if host.startswith("ssh://"):
            return ssh_ping(node, timeout)
        if host.startswith("unix://"):
            status, _ = unix_get(host, "/_ping", timeout)
            return None if status == 200 else f"/_ping answered {status}"
        reach(node, timeout)
        return None
    except DockerError as err:
        return err.message
    except OSError as err:
        return err.strerror or str(err) or type(err).__name__
    except http.client.HTTPException as err:
        return short_reason(str(err)) or type(err).__name__


def node_host(node: Node) -> str:
    """The engine address ``node`` stands for: its DOCKER_HOST, its context's endpoint, or the
    environment's."""
    if node.docker_host:
        return node.docker_host
    if node.context:
        return docker_context(node.context).Host
    if os.environ.get("DOCKER_HOST"):
        return os.environ["DOCKER_HOST"]
    if os.environ.get("DOCKER_CONTEXT", "default") != "default":
        return docker_context(os.environ["DOCKER_CONTEXT"]).Host
    return DEFAULT_HOST


def ssh_ping(node: Node, timeout: float = PING_TIMEOUT) -> str | None:
    """None when the engine behind an ssh:// node answers `docker version` within ``timeout``.

    Not the SDK: its ssh transport lets ssh's own error through to our stderr, says only
    `Broken pipe`, and waits on a hung connection past any timeout. The CLI's error carries
    ssh's words; the subprocess timeout bounds a host that never answers.
    """
    argv = ["docker", "version", "--format", "{{.Server.Version}}"]
    try:
        # A session of its own: on a timeout the CLI's ssh child, which holds our pipes, is
        # killed with it (else reading them would wait out ssh's own ConnectTimeout=30).
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   stdin=subprocess.DEVNULL, text=True, start_new_session=True,
                                   env=child_env(cli_env(node)))
    except OSError as err:
        return err.strerror or str(err)
    try:
        _, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        return f"no answer within {timeout:g} s"
    return None if process.returncode == 0 else ssh_reason(stderr)


def ssh_reason(stderr: str) -> str:
    """ssh's words from the CLI's `error during connect: ... stderr=ssh: connect to host H
    port 22: Connection refused`: the OS's part (`Connection refused`), or ssh's line
    (`Host key verification failed.`, `Permission denied (publickey).`)."""
    text = stderr.split("stderr=", 1)[1] if "stderr=" in stderr else stderr
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    line = lines[-1] if lines else "docker version failed"
    found = re.search(r"port \d+: (.+)$", line)
    return short_reason(found.group(1) if found else line)


def _unreachable(node: Node) -> str | None:
    """``ping`` remembered for the run when it fails, so ten images wait for a dead node once."""
    with _down_lock:
        if node.name in _down:
            return _down[node.name]
    reason = ping(node)
    if reason is not None:
        with _down_lock:
            _down[node.name] = reason
    return reason


def tls_refusal(reason: str | None) -> str | None:
    """What a failed ping says when the node answered but the TLS did not match: a
    configuration error (a wrong certificate stays wrong), not a node that is down."""
    if reason is None:
        return None
    for markers, meaning in _TLS_REFUSALS:
        if any(marker in reason for marker in markers):
            detail = re.sub(r"\[SSL: [A-Z0-9_]+\] |\s*\(_ssl\.c:\d+\)", "", reason)
            return f"{meaning} ({detail})"
    return None


def refused_tls(routing: Routing) -> list[str]:
    """One line per tcp:// node whose TLS does not match, naming the node and the platforms
    routed to it: the preflight stops the run on these before any build, since falling back
    to QEMU would hide a wrong certificate behind a slow, green run."""
    problems = []
    for node in routing.nodes:
        if not (node.docker_host or "").startswith("tcp://"):
            continue
        refusal = tls_refusal(_unreachable(node))
        if refusal is not None:
            platforms = ", ".join(str(p) for p, routed in routing.routes if routed == node)
            problems.append(f"builder {node.name} ({platforms or 'default'}): {refusal}")
    return problems


def choose(routing: Routing, platform: Platform, prefix: str = "") -> Node:
    """The engine that builds ``platform``: its node if it answers, else the default engine.

    Raises:
        DockerError: the node does not answer and says `emulate: false`, or it refuses our
        TLS (never hidden by a fallback).
    """
    node = routing.node_for(platform)
    if node == routing.default:  # nothing to fall back to: the build itself reports it
        return node
    reason = _unreachable(node)
    if reason is None:
        return node
    refusal = tls_refusal(reason)
    if refusal is not None:
        raise DockerError(f"{platform}: builder {node.name}: {refusal}")
    if not node.emulate:
        raise DockerError(f"{platform}: builder {node.name} is unreachable ({reason}); "
                          "emulate: false forbids a local QEMU build")
    fallback = routing.default
    where = "locally" if fallback.from_environment else f"on {fallback.name}"
    how = "natively" if is_native(platform) else "under QEMU"
    say(f"{prefix}builder {node.name} unreachable ({reason}); building {where} {how}")
    return fallback


def explain_failure(err: DockerError, node: Node, what: str, platform: Platform) -> DockerError:
    """A failed build or push, said in one line that names the platform and the engine.

    An engine that went away mid-build (stopped, restarted) is told apart from a build that
    failed on its own, since the fix differs: rerun once the engine is back.
    """
    reason = ping(node)
    if reason is not None:
        message = (f"{platform}: builder {node.name} stopped answering during {what} "
                   f"({reason}); rerun once it is back")
    elif any(marker in err.output for marker in _LOST_CONNECTION):
        message = (f"{platform}: builder {node.name} dropped {what} (the engine restarted?); "
                   "rerun to build it again")
    else:
        message = f"{err.message} on builder {node.name}"
    return DockerError(message, err.argv, err.output)
