"""Run one docker CLI command: argv only, output streamed with a prefix and kept for errors."""

import os
import queue
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from ..errors import DockerError

# BuildKit is the only builder that understands --platform with --pull the way we need; the
# 20.10 CLI still defaults to the classic builder without it.
DOCKER_ENV = {"DOCKER_BUILDKIT": "1"}
# A command silent this long gets a "still building (45 s)" line, and again after as long.
PROGRESS_ENV = "MULTIARCH_PROGRESS_SECONDS"
PROGRESS_SECONDS = 15.0


def say(text: str) -> None:
    """Print one line in one write, so lines of parallel tasks (`doit -n 4`) never merge."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def progress_seconds() -> float:
    """The silence after which a long command says it is still going (env overrides)."""
    try:
        return max(0.1, float(os.environ.get(PROGRESS_ENV, PROGRESS_SECONDS)))
    except ValueError:
        return PROGRESS_SECONDS


def child_env(overrides: dict[str, str | None] | None = None) -> dict[str, str]:
    """The environment docker commands run with: ours, BuildKit on, ``overrides`` applied."""
    env = {**os.environ, **DOCKER_ENV}
    for name, value in (overrides or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def run(argv: list[str], what: str, prefix: str = "", echo: bool = True,
        progress: str | None = None, env: dict[str, str | None] | None = None,
        line_prefix: Callable[[str], str] | None = None) -> str:
    """Run ``argv`` and return its combined output; raise DockerError(what, ...) on failure.

    The command line is printed first, as a user would type it (with the ``env`` it sets, e.g.
    the DOCKER_HOST of a builder node; entries set to None are removed), so a failed step can
    be re-run by hand. Every output line carries ``prefix``; with ``progress`` (a verb such as
    "building"), a command silent for progress_seconds() says `still building (45 s)`, so a
    long QEMU step is visibly alive. ``line_prefix``, when given, picks each output line's
    prefix instead (a bake's lines name the build they are of). Never uses a shell.
    """
    if echo:
        assignments = [f"{name}={value}" for name, value in (env or {}).items() if value]
        say(f"{prefix}$ {shlex.join([*assignments, *argv])}")
    env = child_env(env)
    try:
        process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True,
            errors="replace",
        )
    except OSError as err:
        raise DockerError(f"{what}: cannot run {argv[0]}: {err.strerror}", argv) from None
    lines = []
    for line in _lines(process, progress_seconds() if echo and progress else None):
        if isinstance(line, int):
            say(f"{prefix}still {progress} ({line} s)")
            continue
        lines.append(line)
        if echo:
            say((line_prefix(line) if line_prefix else prefix) + line.rstrip("\n"))
    process.wait()
    output = "".join(lines)
    if process.returncode != 0:
        raise DockerError(f"{what} failed (exit {process.returncode})", argv, output)
    return output


def _lines(process: subprocess.Popen, silence: float | None):
    """The process's output lines, and its age in seconds (an int) each time it has been
    silent for ``silence`` s.

    A reader thread only moves lines to a queue: every write to stdout stays in the calling
    (doit action) thread, which is where doit's thread mode expects it.
    """
    if silence is None:
        yield from process.stdout
        return
    started = time.monotonic()
    lines: queue.Queue = queue.Queue()

    def read():
        for line in process.stdout:
            lines.put(line)
        lines.put("")

    threading.Thread(target=read, daemon=True).start()
    while True:
        try:
            line = lines.get(timeout=silence)
        except queue.Empty:
            yield round(time.monotonic() - started)
            continue
        if line == "":
            return
        yield line

