"""What a run's status checks will need, fetched by a forked child while doit loads.

Beyond what `doit list` pays, a no-op `doit build` spends its time stat-ing every file of
every context (10,000 files: ~45 ms) and asking the registry what the outside bases point at
(10-20 ms of waiting; the engine's mirrors, through which it asks, are remembered between
runs: builders.mirrors). None of that needs doit, so dodo.py forks a child before it even
reads the manifest. The child reads the manifest itself (with
libyaml: ~2 ms), asks about the bases on a thread and walks the contexts on another core,
while the parent reads the manifest, generates the tasks and opens doit's database. It
sends the bases' digests as soon as it has them and each image's context digest as it
walks, in the order doit checks them (bases first), so the parent checks the first images
while the child walks the next. Nothing depends on the child: what it did not send, sent
for another context, or a child that failed or was killed, is walked or asked by the
parent as before. A run that had to wait for another run's lock forks a new child then.

A fork, not a new interpreter: a `python -S -E -m` child was tried and lost by ~25 ms on the
100-image bench. It starts later and imports the registry client itself, so the parent
ended up walking 60 of the 100 contexts. The fork costs the parent ~10 ms instead (page
tables, and the pages it writes while the child lives are copied first).
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import fnmatch
import gc
import marshal
import mmap
import os
import select
import signal
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..model.manifest import load_manifest
from .walk import cached_context_entries, digest_entries

if TYPE_CHECKING:
    from ..model.manifest import Image, Manifest
    from ..model.platforms import Platform

PIPE_SIZE = 1 << 20  # Linux's default pipe-max-size; more would fail, less is only slower
_HEADER = struct.Struct("<I")  # each message: its length, then a marshal dump
_TAIL = struct.Struct("=i")  # the first image the parent walks (or has walked) itself
_NO_TAIL = 2**31 - 1  # the parent has walked none
# An image's context digest and entries (a dict, or its marshal dump as the child sent it).
Context = tuple[str, dict[str, str] | bytes]
_BASES = ""  # the name of the message with the bases' digests (no image is named "")

# Tasks that need no context: `doit doctor` should not walk 10,000 files.
NO_CONTEXT = frozenset({"doctor", "registries", "buildkitd"})


def stat_cache_path(state_dir: Path | None, image_name: str) -> Path | None:
    """Where an image's stat cache lives between runs (nowhere without a state folder)."""
    return state_dir / "stat" / f"{image_name}.json" if state_dir is not None else None


def walk(image: Image, state_dir: Path | None, skip: tuple[Path, ...]) -> dict[str, str]:
    """An image's context entries, through its stat cache."""
    return cached_context_entries(image.context, image.dockerfile,
                                  stat_cache_path(state_dir, image.name), skip)


def unpack(entries: dict[str, str] | bytes) -> dict[str, str] | None:
    """Context entries from ``Prefetch.context``: loaded if still a marshal dump; None if
    that is not a dict of strings (the caller then walks the context itself)."""
    if isinstance(entries, bytes):
        try:
            entries = marshal.loads(entries)
        except (EOFError, ValueError, TypeError):
            return None
    if not isinstance(entries, dict):
        return None
    return entries


def outside_bases(images: list[Image]) -> list[tuple[str, Platform]]:
    """(reference, platform) of every outside base a `pull: true` image of ``images`` is
    built FROM, for each platform it is built for: what the registry probe is asked."""
    wanted = {(ref, platform) for image in images if image.pull
              for ref in image.base_images for platform in image.platforms}
    return sorted(wanted, key=str)


def images_for(manifest: Manifest, task_names: list[str]) -> list[Image]:
    """The images whose inputs the tasks asked for will need, bases included, in the order
    doit checks them (check_order). [] asks for the default task (`build`: every image). A
    name this cannot place (a wildcard across the ':') just leaves its images to be walked
    when checked."""
    wanted: set[str] = set()
    for task_name in task_names or ["build"]:
        group, _, rest = task_name.partition(":")
        if group in NO_CONTEXT:
            continue
        pattern = rest.partition(":")[0]
        wanted.update(image.name for image in manifest.images
                      if not pattern or fnmatch.fnmatchcase(image.name, pattern))
    names = set()
    while wanted:
        name = wanted.pop()
        if name not in names:
            names.add(name)
            wanted.update(manifest.image(name).depends_on)
    return check_order([image for image in manifest.images if image.name in names])


def check_order(images: list[Image]) -> list[Image]:
    """``images`` by depth, then in manifest order: first every image built FROM no other
    image of ``images``, then those FROM only these, and so on.

    doit checks a task once its task_dep are done, so on the 100-image bench it asked for
    the 10 bases first and each base's 9 dependents after; walked in manifest order, the
    child sent image 9 while the parent waited for image 90.
    """
    by_name = {image.name: image for image in images}
    depths: dict[str, int] = {}

    def depth(image: Image) -> int:
        if image.name not in depths:  # the manifest has no cycles: it is refused at load
            depths[image.name] = 1 + max((depth(by_name[base]) for base in image.depends_on
                                          if base in by_name), default=-1)
        return depths[image.name]

    return sorted(images, key=depth)  # stable: manifest order within a depth


class Prefetch:
    """Context entries of some images and the digests of their outside bases, from a forked
    child that sends them as it goes.

    The child walks from the first image on. Whenever the parent needs something the child
    has not sent yet, it walks the last image nobody has walked, so the two meet in the
    middle and neither core waits for the other; what the child sends twice is dropped.
    Each image's message names the context and Dockerfile it was walked for, and each base
    digest its reference and platform, so nothing is taken for an image or a base that the
    parent's manifest describes otherwise.
    """

    def __init__(self, pid: int, fd: int, tail: mmap.mmap | None = None) -> None:
        self.pid, self.fd = pid, fd
        self.tail = tail  # shared with the child: where the parent's walk has reached
        self.parent = os.getpid()
        self.images: list[Image] = []
        self.names: frozenset[str] = frozenset()
        self.state_dir: Path | None = None
        self.skip: tuple[Path, ...] = ()
        self.bases: list[tuple[str, Platform]] = []
        self._lock = threading.Lock()
        self._buffer = bytearray()
        self._messages: dict[str, object] = {}
        self._tail = 0  # images[_tail:] were walked here
        self._done = self._reaped = self._expecting = False

    @classmethod
    def start(cls, manifest: Manifest, images: list[Image]) -> Prefetch | None:
        """Fork a child walking ``images`` (the state folder skipped, as Inputs does it) and
        asking about their outside bases.

        None when there is nothing to walk or no second CPU to walk it on, in a `doit -P
        process` worker (its parent checked the tasks), or beside other threads (a lock one
        of them holds would stay held in the child).
        """
        walked = cls._fork(lambda: (manifest, images)) if images else None
        if walked is not None:
            walked.expect(manifest, images)
        return walked

    @classmethod
    def start_early(cls, path: str, task_names: list[str]) -> Prefetch | None:
        """Fork before this process reads the manifest at ``path``: the child reads it too,
        with libyaml's parser where PyYAML has it (~2 ms, not ~15), and walks what the tasks
        named need. ``expect`` then says which images this side's manifest has.

        A manifest the child cannot read leaves it nothing to send: this process reads it
        again and reports why.
        """
        def plan() -> tuple[Manifest, list[Image]]:
            manifest = load_manifest(path, quick=True)
            return manifest, images_for(manifest, task_names)

        if task_names and all(name.partition(":")[0] in NO_CONTEXT for name in task_names):
            return None  # `doit doctor`: no context to walk
        return cls._fork(plan)

    @classmethod
    def _fork(cls, plan: Callable[[], tuple[Manifest, list[Image]]]) -> Prefetch | None:
        import multiprocessing

        if (multiprocessing.parent_process() is not None or threading.active_count() > 1
                or (os.cpu_count() or 1) < 2):
            return None
        read_end, write_end = os.pipe()
        with contextlib.suppress(OSError):  # room for all of 10,000 files: the child never waits
            fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        tail = mmap.mmap(-1, _TAIL.size)  # anonymous and shared: both sides see its writes
        _TAIL.pack_into(tail, 0, _NO_TAIL)
        gc.freeze()  # the parent's collections then leave the pages it shares with the child
        try:
            pid = os.fork()
        except OSError:
            os.close(read_end)
            os.close(write_end)
            return None
        if pid == 0:
            os.close(read_end)
            _child(write_end, plan, tail)
        os.close(write_end)
        walked = cls(pid, read_end, tail)
        atexit.register(walked._end)
        return walked

    def expect(self, manifest: Manifest, images: list[Image]) -> None:
        """What this side's manifest says the child walks: ``images``, in the child's order
        (images_for), and their outside bases."""
        self.images, self.state_dir = list(images), manifest.state_dir
        self.names = frozenset(image.name for image in images)
        self.skip, self.bases = (manifest.state_dir,), outside_bases(images)
        self._tail, self._expecting = len(self.images), True
        self._check_complete()

    def stop(self) -> None:
        """Take nothing more from the child (it walked while another run held the
        workspace: what it saw may have changed since)."""
        with self._lock:
            if not self._done:
                self._finish()

    def context(self, image: Image, skip: tuple[Path, ...]) -> Context | None:
        """(context digest, entries) of ``image``, walked by the child or here, or None: not
        one of the images, walked with other ``skip`` folders or for another context or
        Dockerfile, asked from another process, or it could not be walked (the caller walks
        it again and reports why).

        The child's entries come as their marshal dump, left for ``unpack`` to load: a
        no-op needs only the digest, and loading 10,000 entries costs ~3 ms.
        """
        if image.name not in self.names or skip != self.skip:
            return None
        found = self._message(image.name)
        if (not isinstance(found, tuple) or len(found) != 4
                or found[:2] != (str(image.context), str(image.dockerfile))
                or not isinstance(found[2], str) or not isinstance(found[3], bytes | dict)):
            return None
        return found[2], found[3]

    def entries(self, image: Image, skip: tuple[Path, ...]) -> dict[str, str] | None:
        """``image``'s context entries (see ``context``), or None."""
        found = self.context(image, skip)
        return unpack(found[1]) if found else None

    def base_digests(self) -> dict[tuple[str, Platform], str | None]:
        """What each outside base points at per platform, as the child's RegistryProbe
        answered; those it did not answer are left out."""
        answers = self._message(_BASES) if self.bases else None
        try:
            found = {(ref, platform): digest for ref, platform, digest in answers}
        except (TypeError, ValueError):  # nothing sent, or not what the child sends
            return {}
        return {(ref, platform): found[ref, str(platform)] for ref, platform in self.bases
                if (ref, str(platform)) in found}

    def _message(self, name: str):
        if os.getpid() != self.parent:
            return None
        with self._lock:
            while name not in self._messages and not self._done:
                if not self._read(wait=False) and not self._walk_last():
                    self._read(wait=True)
            return self._messages.get(name)

    def _walk_last(self) -> bool:
        """Walk the last image neither side has yet; False when there is none."""
        while self._tail > 0:
            self._tail -= 1
            if self.tail is not None:
                _TAIL.pack_into(self.tail, 0, self._tail)
            image = self.images[self._tail]
            if image.name not in self._messages:
                self._messages[image.name] = walked(image, self.state_dir, self.skip, dict)
                self._check_complete()
                return True
        return False

    def _read(self, wait: bool) -> bool:
        """Take in what the child sent; False when nothing was there (``wait``: nothing came,
        the stream ended)."""
        if not wait and not select.select([self.fd], [], [], 0)[0]:
            return False
        try:
            chunk = os.read(self.fd, PIPE_SIZE)
        except OSError:
            chunk = b""
        if not chunk:  # the child ended, or failed
            self._finish()
            return False
        self._buffer += chunk
        while len(self._buffer) >= _HEADER.size:
            (size,) = _HEADER.unpack_from(self._buffer)
            if len(self._buffer) < _HEADER.size + size:
                break
            try:
                name, content = marshal.loads(self._buffer[_HEADER.size:_HEADER.size + size])
            except (EOFError, ValueError, TypeError):
                self._finish()
                return False
            del self._buffer[:_HEADER.size + size]
            self._messages.setdefault(name, content)
        self._check_complete()
        return True

    def _check_complete(self) -> None:
        if (self._expecting and not self._done and self.names <= self._messages.keys()
                and (not self.bases or _BASES in self._messages)):
            self._finish()

    def _finish(self) -> None:
        """Stop reading; a child still walking fails its next send and exits. It is reaped
        now if it has, else when this process exits (``_end``)."""
        self._done = True
        os.close(self.fd)
        with contextlib.suppress(ChildProcessError):
            self._reaped = os.waitpid(self.pid, os.WNOHANG)[0] != 0

    def _end(self) -> None:
        """At exit: stop a child still at work (nothing it finds is needed now, and a slow
        registry must not hold this process) and reap it."""
        if os.getpid() != self.parent:
            return
        if not self._done:
            self._finish()
        if not self._reaped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)
            self._reaped = True


def for_run(early: Prefetch | None, manifest: Manifest, task_names: list[str],
            waited: bool) -> Prefetch | None:
    """The prefetch of a run that checks ``task_names``: the child forked early, told what
    ``manifest`` holds; or, if it walked while another run held the workspace (``waited``)
    or was not forked, a child forked now."""
    images = images_for(manifest, task_names)
    if early is not None and not waited:
        early.expect(manifest, images)
        return early
    if early is not None:
        early.stop()
    return Prefetch.start(manifest, images)


def walked(image: Image, state_dir: Path | None, skip: tuple[Path, ...], dump=marshal.dumps):
    """An image's message: (context, Dockerfile, context digest, ``dump`` of the entries), or
    None if it could not be walked."""
    try:
        entries = walk(image, state_dir, skip)
    except (OSError, ValueError):
        return None
    return str(image.context), str(image.dockerfile), digest_entries(entries), dump(entries)


def _child(fd: int, plan: Callable[[], tuple[Manifest, list[Image]]], tail: mmap.mmap) -> None:
    """The child: learn what to walk from ``plan``, ask about the bases on a thread, walk,
    and send each answer when it has it (None for an image it cannot walk: the parent walks
    it again and reports the error where it belongs); then leave without running the
    parent's exit handlers or flushing its buffers."""
    code = 1
    try:
        manifest, images = plan()
        skip, bases = (manifest.state_dir,), outside_bases(images)
        answers: list = []
        asking = threading.Thread(target=_ask, args=(manifest, bases, answers), daemon=True)
        if bases:
            asking.start()
        with open(fd, "wb") as pipe:
            for index, image in enumerate(images):
                if index >= _TAIL.unpack_from(tail)[0]:
                    break  # the parent walked the rest
                _send(pipe, image.name, walked(image, manifest.state_dir, skip))
                if bases and not asking.is_alive():
                    _send(pipe, _BASES, answers)
                    bases = []
            if bases:
                asking.join()
                _send(pipe, _BASES, answers)
        code = 0
    except BaseException:  # noqa: BLE001, S110 - Ctrl-C, a closed pipe: the parent walks
        pass
    finally:
        os._exit(code)


def _ask(manifest: Manifest, bases: list[tuple[str, Platform]], answers: list) -> None:
    """Fill ``answers`` with (reference, platform, digest) for each base, as the probe
    answers (left empty if the probe fails)."""
    from ...builders.registry.probe import RegistryProbe

    probe = RegistryProbe(manifest.registries, manifest.retries, manifest.state_dir)
    found = [(ref, str(platform), probe.platform_digest(ref, platform))
             for ref, platform in bases]
    answers.extend(found)


def _send(pipe, name: str, content) -> None:
    data = marshal.dumps((name, content))
    pipe.write(_HEADER.pack(len(data)) + data)
    pipe.flush()
