"""Run one docker CLI command: argv only, output streamed with a prefix and kept for errors."""

import os
import shlex
import subprocess
import sys

from builders.errors import DockerError

# BuildKit is the only builder that understands --platform with --pull the way we need; the
# 20.10 CLI still defaults to the classic builder without it.
DOCKER_ENV = {"DOCKER_BUILDKIT": "1"}


def say(text: str) -> None:
    """Print one line in one write, so lines of parallel tasks (`doit -n 4`) never merge."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def run(argv: list[str], what: str, prefix: str = "", echo: bool = True) -> str:
    """Run ``argv`` and return its combined output; raise DockerError(what, ...) on failure.

    The command line is printed first, as a user would type it, so a failed step can be
    re-run by hand. Never uses a shell.
    """
    if echo:
        say(f"{prefix}$ {shlex.join(argv)}")
    env = {**os.environ, **DOCKER_ENV}
    try:
        process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True,
            errors="replace",
        )
    except OSError as err:
        raise DockerError(f"{what}: cannot run {argv[0]}: {err.strerror}", argv) from None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if echo:
            sys.stdout.write(prefix + line if line.endswith("\n") else prefix + line + "\n")
    process.wait()
    output = "".join(lines)
    if process.returncode != 0:
        raise DockerError(f"{what} failed (exit {process.returncode})", argv, output)
    return output
