"""The build context as ``docker build`` sends it: walked, each file's digest kept in a stat
cache between runs, and hashed."""

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from stat import S_ISLNK, S_ISREG, S_IXUSR

from ..model.files import write_atomic
from ..model.manifest import Image
from .dockerignore import PatternMatcher, read_ignore_file

_RACY_NS = 2_000_000_000  # files changed this recently are hashed but not cached
_CACHE_VERSION = 2  # of the stat cache files


def _scan(context: Path, dockerfile: Path, skip: tuple[Path, ...]) -> Iterator[tuple]:
    """Yield (relative, kind, stat) of every sent entry, pruned like fsutil's filter walker.

    One ``lstat`` per file or link and none per folder (the dirent says it is one; its stat
    is None): a no-op run stats the context and reads nothing. Order is scandir's; callers
    sort what they compare. A generator, so the 10,000s of tuples die young and never wake
    the cyclic GC.
    """
    matcher = PatternMatcher(read_ignore_file(context, dockerfile))
    prune = matcher.prunes()
    skipped = {(s.st_dev, s.st_ino) for s in (os.stat(p) for p in skip if os.path.isdir(p))}
    skipped_inodes = {inode for _, inode in skipped}
    # No .dockerignore: everything is sent.
    matches = matcher.matches_using_parents if matcher.patterns else None
    sent_parents: set[str] = set()
    # (folder, relative prefix, parents' pattern results, excluded ancestors waiting, excluded)
    stack: list[tuple] = [(str(context), "", [], (), False)]
    while stack:
        folder, prefix, parents, pending, excluded = stack.pop()
        try:
            with os.scandir(folder) as listing:
                entries = list(listing)
        except OSError:
            if excluded:  # fsutil ignores unreadable folders it only walks for exceptions
                continue
            raise
        for entry in entries:
            path = prefix + entry.name
            if entry.is_dir(follow_symlinks=False):  # the dirent's type: no lstat needed
                kind, info = "dir", None
                if entry.inode() in skipped_inodes:
                    info = entry.stat(follow_symlinks=False)
                    if (info.st_dev, info.st_ino) in skipped:
                        continue
            else:
                info = entry.stat(follow_symlinks=False)
                mode = info.st_mode
                if S_ISREG(mode):
                    kind = "file"
                elif S_ISLNK(mode):
                    kind = "link"
                else:
                    continue  # sockets, pipes, devices: not sent
            if matches is None:
                yield path, kind, info
                if kind == "dir":
                    stack.append((entry.path, path + "/", parents, (), False))
                continue
            hit, results = matches(path, parents)
            if hit and kind == "dir" and prune and not matcher.may_include_below(path):
                continue
            if not hit:  # an excluded parent is sent once something inside it is
                for parent in pending:
                    if parent[0] not in sent_parents:
                        sent_parents.add(parent[0])
                        yield parent
                yield path, kind, info
            if kind == "dir":
                inner = (*pending, (path, kind, info)) if hit else ()
                stack.append((entry.path, path + "/", results, inner, hit))


def sent_files(context: Path, dockerfile: Path) -> list[str]:
    """Sorted relative paths of the regular files and symlinks the build would send (directories
    walked, ignored ones pruned when no exception could match inside)."""
    return sorted(path for path, kind, _ in _scan(context, dockerfile, ()) if kind != "dir")


class StatCache:
    """sha256 per relative path, trusted while the file's (size, mtime_ns, inode, mode) stay
    the same; stored as JSON at a given path, so re-hashing an unchanged context costs one
    stat per file and no reads.

    An entry is one string, ``"size:mtime_ns:inode:mode:sha256"``: strings load from JSON
    several times faster than lists (no objects for the cyclic GC to track).
    """

    def __init__(self, path: Path | None) -> None:
        self.path, self.reads, self.entries = path, 0, {}
        with contextlib.suppress(OSError, ValueError, LookupError, TypeError, AttributeError):
            stored = json.loads(path.read_bytes()) if path else {}
            entries = stored["entries"] if stored.get("version") == _CACHE_VERSION else {}
            if all(type(v) is str for v in entries.values()):
                self.entries = entries
        self._saved = dict(self.entries)
        self._used: dict[str, str] = {}  # what this run used, as it will be saved

    def file_digest(self, context: Path, relative: str) -> str:
        """sha256 of one file, read only when its stat key differs from the cached one."""
        return self.digest(context, relative, os.lstat(context / relative))

    def digest(self, context: Path, relative: str, info: os.stat_result) -> str:
        """sha256 of the file ``info`` describes (from the cache while its stat key holds)."""
        key = f"{info.st_size}:{info.st_mtime_ns}:{info.st_ino}:{info.st_mode}:"
        cached = self.entries.get(relative)
        if cached is not None and cached.startswith(key):
            self._used[relative] = cached
            return cached[len(key):]
        with open(os.path.join(context, relative), "rb") as file:
            digest = hashlib.file_digest(file, "sha256").hexdigest()
        self.reads += 1
        if time.time_ns() - info.st_mtime_ns > _RACY_NS:  # else a same-size edit could hide
            self.entries[relative] = self._used[relative] = key + digest
        return digest

    def save(self) -> None:
        """Write the entries used since loading, atomically; a read-only folder just skips it."""
        if self.path is None:
            return
        entries = self._used
        if entries == self._saved:
            return  # a no-op run writes nothing
        self._saved = dict(entries)
        with contextlib.suppress(OSError):
            write_atomic(self.path, json.dumps({"version": _CACHE_VERSION, "entries": entries},
                                               sort_keys=True))


def context_entries(context: Path, dockerfile: Path, cache: StatCache | None = None,
                    skip: tuple[Path, ...] = ()) -> dict[str, str]:
    """What the build sends, as relative path → "kind:executable:content digest or target".

    Kept per build so a later run can say which entry changed, not only that one did.
    """
    cache = cache if cache is not None else StatCache(None)
    entries = {}
    for relative, kind, info in _scan(context, dockerfile, skip):
        if kind == "file":
            executable = "1" if info.st_mode & S_IXUSR else "0"
            entries[relative] = f"file:{executable}:{cache.digest(context, relative, info)}"
        elif kind == "dir":
            entries[relative] = "dir:0:"
        else:
            entries[relative] = f"link:0:{os.readlink(os.path.join(context, relative))}"
    return entries


def stat_cache_path(state_dir: Path | None, image_name: str) -> Path | None:
    """Where an image's stat cache lives between runs (nowhere without a state folder)."""
    return state_dir / "stat" / f"{image_name}.json" if state_dir is not None else None


def walk(image: Image, state_dir: Path | None, skip: tuple[Path, ...] = ()) -> dict[str, str]:
    """``image``'s context entries, through its stat cache in ``state_dir``: an unchanged
    context costs stats, not reads."""
    cache = StatCache(stat_cache_path(state_dir, image.name))
    entries = context_entries(image.context, image.dockerfile, cache, skip)
    cache.save()
    return entries


def digest_entries(entries: dict[str, str]) -> str:
    """sha256 over the sorted entries, one ``relative\0entry\n`` line each."""
    lines = "".join([f"{relative}\0{entries[relative]}\n" for relative in sorted(entries)])
    return "sha256:" + hashlib.sha256(lines.encode(errors="surrogateescape")).hexdigest()


def context_digest(context: Path, dockerfile: Path, cache: StatCache | None = None,
                   skip: tuple[Path, ...] = ()) -> str:
    """sha256 over (relative path, kind, executable bit, content digest or link target) of what
    the build sends; mtimes stay out so ``touch`` rebuilds nothing. ``skip``: our state folders."""
    return digest_entries(context_entries(context, dockerfile, cache, skip))
