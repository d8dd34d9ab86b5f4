"""Which builds go into one bake: when the first build of a run runs, every build of the run
that doit will find stale and that may start now joins it.

doit checks and runs one task at a time, so no task sees the others' checks. The run's
builds are known from its command line (``planned``) and each one's last input digest from
the state DB: a build whose digest moved will be run, so it is built now, in the same BuildKit
session (builders.stages.bake). The per-(image, platform) task stays what doit checks and
reports: when it runs, it finds its image made by the batch; a build the batch did not make
(not foreseen, failed in the bake, another engine) builds on its own, as before.
"""

import os
import threading
from collections.abc import Iterable

from ...builders.engine.api import engine_info
from ...builders.engine.client import engine, sdk
from ...builders.engine.facts import host_arch, uses_containerd_store
from ...builders.engine.family import family
from ...builders.errors import DockerError
from ...builders.registry.probe import UNKNOWN
from ...builders.stages import bake
from ..inputs.digests import Inputs
from ..model.engines import PODMAN
from ..model.manifest import Image, Manifest
from ..model.platforms import Platform
from ..model.tags import content_tag
from . import names
from .state import saved_values

Key = tuple[str, Platform]  # (image name, platform): one build task


def planned(manifest: Manifest, args: Iterable[str], single: bool = False) -> list[Key]:
    """The builds a `doit run` of ``args`` may bake, bases first: those its tasks push, and
    (unless `-s`) every platform of the images they are built FROM.

    A build task named alone (`build:web:linux/arm64`) is left out: it builds into the engine
    under its per-platform tag for a local `docker run`, and pushes nothing, while a bake
    pushes its images to the registry.
    """
    wanted: dict[Key, None] = {}
    known = {image.name: image for image in manifest.images
             if image.method.strategy == "manifest"}

    def add(image: Image, platforms) -> None:
        if not single:
            for base in image.depends_on:
                if base in known:
                    add(known[base], known[base].platforms)
        for platform in platforms:
            wanted.setdefault((image.name, platform), None)

    for arg in args or (names.BUILD,):
        kind, name, platform = names.kind(arg)
        if kind in (names.BUILD, names.PUSH, names.MANIFEST, names.IMAGE) and name is None:
            for image in known.values():
                add(image, image.platforms)
        elif name in known and kind == names.PUSH:
            add(known[name], [p for p in known[name].platforms if str(p) == platform])
        elif name in known and kind == names.BUILD and not single:
            add(known[name], [])  # its bases, whose lists it needs, are pushed
        elif name in known and kind in (names.MANIFEST, names.IMAGE):
            add(known[name], known[name].platforms)
    return list(wanted)


class Batches:
    """The run's bakes, made as its build tasks ask (``built``); thread-safe.

    ``records`` is the state DB (None under a backend of the user's: nothing is foreseen,
    and every build runs alone), ``always`` doit's `-a`. In a `-P process` worker (another
    process than the one that loaded the tasks) it builds nothing: the workers could not
    share what a bake made.
    """

    def __init__(self, manifest: Manifest, inputs: Inputs, planned: list[Key],
                 records: str | None, always: bool = False):
        self.manifest, self.inputs = manifest, inputs
        self.planned, self.records, self.always = planned, records, always
        self.pid = os.getpid()
        self._lock = threading.Lock()
        self._claimed: set[Key] = set()
        self._built: dict[Key, dict] = {}
        self._can_bake: bool | None = None
        self._arch: str | None = None

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.planned, self.pid = [], None

    def built(self, image: Image, platform: Platform) -> dict | None:
        """What the bake made for this build (baking it and its level first, if it is the
        first to ask), or None when it is to be built on its own."""
        if self.pid != os.getpid() or self.records is None or not self.planned:
            return None
        key = (image.name, platform)
        with self._lock:
            if key not in self._claimed:
                self._bake(image, key)
            return self._built.get(key)

    def _bake(self, caller: Image, key: Key) -> None:
        """Bake ``key`` and every other build that will run and whose bases are published:
        those built FROM no more than what ``caller`` is (doit ran its bases' lists first).
        Each build is looked at once: one not baked now is built on its own when it runs."""
        manifest, bases = self.manifest, set(caller.depends_on)
        candidates = [k for k in self.planned if k not in self._claimed
                      and set(manifest.image(k[0]).depends_on) <= bases]
        if key not in candidates:
            candidates.append(key)
        self._claimed.update(candidates)
        default = manifest.routing.default
        chosen = [k for k in self._stale(candidates, key)
                  if manifest.routing.node_for(k[1]) == default]
        if not chosen or not self._engine_bakes():
            return
        batch = []
        for name in dict.fromkeys(name for name, _ in chosen):
            image = manifest.image(name)
            platforms = [p for n, p in chosen if n == name]
            batch += bake.targets(image, platforms,
                                  [self.inputs.digest(image, p) for p in platforms])
        self._built.update(bake.bake(batch, manifest.state_dir, default, manifest.registries,
                                     self._arch))

    def _stale(self, keys: list[Key], running: Key) -> list[Key]:
        """The builds doit will find stale (``running``, which it has; the others whose input
        digest moved since their last record), less those the registry has by content tag,
        which the build stage only tags."""
        saved = {} if self.always else saved_values(self.records)
        stale = []
        for name, platform in keys:
            image = self.manifest.image(name)
            try:
                digest = self.inputs.digest(image, platform)
            except (OSError, ValueError):
                continue  # its own task reports the problem
            values = saved.get(names.build(name, platform), {})
            if (name, platform) == running or values.get("input_digest") != digest:
                stale.append(((name, platform), image, digest))
        if self.manifest.cache == "registry" and stale and self.inputs.probe is not None:
            probe = self.inputs.probe
            refs = [f"{image.repository}:{content_tag(digest)}" for _, image, digest in stale]
            probe.expect(refs)
            stale = [entry for entry, ref in zip(stale, refs, strict=True)
                     if probe.digest(ref) in (None, UNKNOWN)]
        return [key for key, _, _ in stale]

    def _engine_bakes(self) -> bool:
        """Whether the default engine builds several platforms in one session (the containerd
        image store); the classic store builds one platform at a time, as before. Its
        architecture comes with the answer, for the bake to say which builds were emulated."""
        if self._can_bake is None and family(self.manifest.engine) == PODMAN:
            self._can_bake = False  # podman build takes one platform at a time
        if self._can_bake is None:
            node = self.manifest.routing.default
            if node.from_environment and not os.environ.get("DOCKER_CONTEXT"):
                info = engine_info()  # over the socket, without loading the SDK
            else:
                try:
                    info = engine(node).info()
                except (DockerError, OSError, sdk().errors.DockerException):
                    info = {}
            self._can_bake = uses_containerd_store(info.get("DriverStatus"))
            self._arch = host_arch(info["Architecture"]) if info.get("Architecture") else None
        return self._can_bake
