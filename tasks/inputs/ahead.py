"""Build contexts walked, and outside bases asked, ahead: on the machine's second core,
while doit loads its tasks.

A no-op `doit build` of 100 images stats 10,000 files and asks the registry what its outside
bases point at before it can say "up to date": about half of its time, the walk all of it
in Python and so on one core however many threads walk. A run that will check tasks hands
both to one worker process, forked before doit loads the tasks, and finds the answers
ready when its checks ask (bench/run.py, figures in docs/performance.md). Nothing depends on
the worker: a context it could not walk raises here as it would have; a context or base it
was not asked for, or asked for in another process (a `doit -P process` worker), or that the
registry did not answer, is walked or asked by the caller.
"""

import multiprocessing
import os
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from ..model.manifest import Image
from ..model.platforms import Platform
from .walk import walk


class WalksAhead:
    """What the outside bases of ``images`` point at, asked of ``probe`` (a
    builders.registry.probe.RegistryProbe), then each image's context entries, walked in the
    order given: by a forked worker."""

    def __init__(self, images: list[Image], state_dir: Path | None, skip: tuple[Path, ...],
                 probe=None):
        self.skip = skip
        self._pid = os.getpid()
        self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))
        bases = outside_bases(images) if probe is not None else []
        self._bases = self._pool.submit(probe.answers, bases) if bases else None
        self._walks: dict[str, tuple[Image, Future]] = {
            image.name: (image, self._pool.submit(walk, image, state_dir, skip))
            for image in images}
        self._pool.shutdown(wait=False)  # the worker ends once the last walk is handed over

    def entries(self, image: Image, skip: tuple[Path, ...]) -> dict[str, str] | None:
        """``image``'s entries as the worker walked them, or None for the caller to walk: not
        asked for, another process, other ``skip`` folders or another image of that name,
        the worker is gone, or it has not started on this one yet (it goes on with the next,
        so the two walk the rest between them). A walk that failed raises its error here, as
        the caller's own walk would."""
        found = self._walks.get(image.name)
        if os.getpid() != self._pid or found is None or found[0] != image or skip != self.skip:
            return None
        if found[1].cancel():  # not started: walking it here is sooner than waiting for it
            return None
        try:
            return found[1].result()
        except (BrokenProcessPool, CancelledError):
            return None

    def base_digests(self) -> dict[tuple[str, Platform], str | None]:
        """What each outside base points at per platform, as the worker's probe answered;
        those it could not ask are left out."""
        if os.getpid() != self._pid or self._bases is None:
            return {}
        try:
            return self._bases.result()
        except (BrokenProcessPool, CancelledError):
            return {}

    def cancel(self) -> None:
        """Drop the walks not started yet (the run ends early, or no longer needs them)."""
        for _, future in self._walks.values():
            future.cancel()


def outside_bases(images: list[Image]) -> list[tuple[str, Platform]]:
    """(reference, platform) of every outside base a `pull: true` image is built FROM, for
    each platform it is built for: what the registry probe is asked."""
    wanted = {(ref, platform) for image in images if image.pull
              for ref in image.base_images for platform in image.platforms}
    return sorted(wanted, key=str)


def check_order(images: list[Image]) -> list[Image]:
    """``images`` by depth, then in manifest order: first every image built FROM no other
    image of ``images``, then those FROM only these, and so on, as doit checks them (a task
    is checked once the tasks it depends on are done)."""
    by_name = {image.name: image for image in images}
    depths: dict[str, int] = {}

    def depth(image: Image) -> int:
        if image.name not in depths:  # the manifest has no cycles: it is refused at load
            depths[image.name] = 1 + max((depth(by_name[base]) for base in image.depends_on
                                          if base in by_name), default=-1)
        return depths[image.name]

    return sorted(images, key=depth)
