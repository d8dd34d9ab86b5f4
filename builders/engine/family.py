"""Which engine family builds a run: the manifest's `engine:`, or the one that answers."""

import functools
import shutil
import sys

from ...tasks.model.engines import DOCKER, PODMAN
from ...tasks.model.routing import LOCAL
from .nodes import ping


def family(declared: str | None) -> str:
    """The manifest's `engine:` when set; else Docker, or Podman when no Docker engine
    answers and `podman` is on PATH (said once per process on stderr, which doit shows
    whatever task asked first: a guess is never silent)."""
    return declared or _detected()


@functools.cache
def _detected() -> str:
    reason = ping(LOCAL)
    if reason is None or shutil.which("podman") is None:
        return DOCKER
    sys.stderr.write(f"multiarch: no Docker engine answers ({reason}); building with podman, "
                     "as `engine: podman` in multiarch.yaml would\n")
    return PODMAN
