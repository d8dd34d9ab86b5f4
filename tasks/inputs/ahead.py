"""Contexts walked by a forked child while doit loads its tasks and reads its state.

A no-op `doit build` of a large monorepo spends most of its own time stat-ing every file of
every context, one image after the other, on one core. Nothing in that walk needs doit, so a
run forks a child that walks them all on the other core and sends each image's context back
through a pipe; ``Inputs.context`` takes it from there. Nothing depends on the child: a
context it did not send (it failed, was killed, or the pipe ended) is walked by the parent.
"""

import contextlib
import fcntl
import marshal
import os
import signal
from collections.abc import Iterable
from pathlib import Path

from ..model.manifest import Image
from .walk import digest_entries, walk

Context = tuple[str, bytes]  # a context's digest, and its entries' marshal dump
PIPE_SIZE = 1 << 20  # so the child seldom waits for the parent to read; more needs root
_LENGTH = 4


class WalkAhead:
    """A forked child walking ``images``' contexts in order; ``take`` what it sent."""

    def __init__(self, images: Iterable[Image], state_dir: Path | None,
                 skip: tuple[Path, ...] = ()):
        images = list(images)
        read_end, write_end = os.pipe()
        with contextlib.suppress(OSError):
            fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        self.pid = os.fork()
        if self.pid == 0:
            os.close(read_end)
            _child(images, state_dir, skip, write_end)
        os.close(write_end)
        self._parent = os.getpid()
        self._pipe = os.fdopen(read_end, "rb")
        self._sent: dict[str, Context] = {}

    def take(self, name: str) -> Context | None:
        """``name``'s (digest, entries dump), reading what the child sent until it comes;
        None once the pipe has ended without it, or in a forked worker (`doit -P process`),
        which would take the parent's messages."""
        if os.getpid() != self._parent:
            return None
        while name not in self._sent and self._pipe is not None:
            message = self._read()
            if message is None:
                self.close()
                break
            sent, digest, entries = message
            self._sent[sent] = (digest, entries)
        return self._sent.pop(name, None)

    def _read(self) -> tuple[str, str, bytes] | None:
        header = self._pipe.read(_LENGTH)
        if len(header) < _LENGTH:
            return None
        body = self._pipe.read(int.from_bytes(header, "little"))
        try:
            return marshal.loads(body)
        except (EOFError, ValueError, TypeError):
            return None

    def close(self) -> None:
        """Stop the child if it still walks, and reap it."""
        if self._pipe is None or os.getpid() != self._parent:
            return
        self._pipe.close()
        self._pipe = None
        with contextlib.suppress(OSError):
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)


def _child(images: list[Image], state_dir: Path | None, skip: tuple[Path, ...],
           write_end: int) -> None:
    """The child: walk, send each context as (length, marshal dump), exit without running
    the parent's exit handlers or flushing its buffers."""
    code = 0
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        with os.fdopen(write_end, "wb") as pipe:
            for image in images:
                entries = walk(image, state_dir, skip)
                body = marshal.dumps((image.name, digest_entries(entries),
                                      marshal.dumps(entries)))
                pipe.write(len(body).to_bytes(_LENGTH, "little") + body)
                pipe.flush()
    except BaseException:  # the parent walks what did not come
        code = 1
    finally:
        os._exit(code)
