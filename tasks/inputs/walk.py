"""Build-context digests: hash exactly what ``docker build`` would send, honouring .dockerignore."""

import contextlib
import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from stat import S_ISLNK, S_ISREG, S_IXUSR

# Go's unicode.IsSpace set: str.strip() would also trim \x1c-\x1f, which strings.TrimSpace keeps.
_SPACE = " \t\n\v\f\r\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009" \
    "\u200a\u2028\u2029\u202f\u205f\u3000"
_ESCAPE = set(".+()|{}$")  # regexp specials that are literals in filepath.Match
_PATTERN_CHARS = set("*[]?^\\")  # fsutil: an exception holding one of these can match anywhere
_CLASS_CHAR = r"(?:\\.|[^\\\]-])"  # Go's getEsc: an escaped rune, or any but '\', ']' and '-'
# What Go's filepath.Match accepts: escapes complete, classes closed, non-empty, with sane ranges.
_GO_GLOB = re.compile(rf"(?:\\.|\[\^?+(?:{_CLASS_CHAR}(?:-{_CLASS_CHAR})?)+\]|[^\\\[])*", re.S)
_RACY_NS = 2_000_000_000  # files changed this recently are hashed but not cached
_CACHE_VERSION = 2  # of the stat cache files


def _clean(path: str) -> str:
    """Go's path.Clean, which Docker applies to patterns (os.path.normpath keeps a leading //)."""
    rooted, parts = path.startswith("/"), []
    for part in path.split("/"):
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
        elif part not in ("", "."):
            parts.append(part)
    cleaned = "/".join(parts)
    return "/" + cleaned if rooted else cleaned or "."


def _compile(pattern: str) -> tuple[str, str]:
    """moby's Pattern.compile: ("exact"|"prefix"|"suffix"|"regexp", Go regexp source)."""
    regex, kind, i, pos = "^", "exact", 0, 0
    while pos < len(pattern):
        char, pos = pattern[pos], pos + 1
        nxt = pattern[pos : pos + 1]
        if char == "*" and nxt == "*":
            pos += 1
            if pattern[pos : pos + 1] == "/":
                pos += 1
            if pos == len(pattern):
                if kind == "exact":
                    kind = "prefix"
                else:
                    regex, kind = regex + ".*", "regexp"
            else:
                regex, kind = regex + "(.*/)?", "regexp"
            if i == 0:
                kind = "suffix"
        elif char == "*":
            regex, kind = regex + "[^/]*", "regexp"
        elif char == "?":
            regex, kind = regex + "[^/]", "regexp"
        elif char in _ESCAPE:
            regex += "\\" + char
        elif char == "\\":
            if nxt:
                regex, kind, pos = regex + "\\" + nxt, "regexp", pos + 1
            else:
                regex += "\\"
        else:
            regex += char
            if char in "[]":
                kind = "regexp"
        i += 1
    return kind, regex + "$" if kind == "regexp" else ""


def _without_glob(text: str) -> str:
    """fsutil's patternWithoutTrailingGlob, plus the "/" its prefix test appends."""
    return text.removesuffix("/**").removesuffix("/*") + "/"


class _Pattern:
    """One cleaned pattern with moby's four ways of matching it."""

    def __init__(self, text: str, exclusion: bool) -> None:
        self.text, self.exclusion = text, exclusion
        self.kind, source = _compile(text)
        try:  # Go's $ is end of text; Python's would also match before a final newline
            self.regexp = re.compile(source[:-1] + r"\Z") if source else None
        except re.error as error:
            raise ValueError(f"invalid .dockerignore pattern {text!r}: {error}") from None

    def match(self, path: str) -> bool:
        if self.kind == "exact":
            return path == self.text
        if self.kind == "prefix":
            return path.startswith(self.text[:-2])
        if self.kind == "suffix":
            suffix = self.text[2:]
            return path.endswith(suffix) or (suffix[0] == "/" and path == suffix[1:])
        return self.regexp.match(path) is not None


class PatternMatcher:
    """.dockerignore semantics, ported from github.com/moby/patternmatcher (patternmatcher.go)."""

    def __init__(self, patterns: list[str]) -> None:
        self.patterns: list[_Pattern] = []
        for raw in patterns:
            text = raw.strip(_SPACE)
            if not text:
                continue
            text, exclusion = _clean(text), False
            if text.startswith("!"):
                if text == "!":
                    raise ValueError('illegal exclusion pattern: "!"')
                text, exclusion = text[1:], True
            if not _GO_GLOB.fullmatch(text):
                raise ValueError(f"invalid .dockerignore pattern {raw!r}: syntax error in pattern")
            self.patterns.append(_Pattern(text, exclusion))
        self.exclusions = any(pattern.exclusion for pattern in self.patterns)

    def matches(self, path: str) -> bool:
        """True when the path or a parent is excluded and no later ``!`` pattern re-includes it."""
        return self._matches(path, [])[0]

    def _matches(self, path: str, parents: list[bool]) -> tuple[bool, list[bool]]:
        """MatchesUsingParentResults: ``parents`` holds the parent's per-pattern results, or []."""
        matched, results, parent_dirs = False, [], []
        if not parents:  # no parent results: match the parent folders too
            parent = _clean(path[: path.rfind("/") + 1])  # filepath.Dir
            parent_dirs = parent.split("/") if parent != "." else []
        for index, pattern in enumerate(self.patterns):
            match = parents[index] if parents else False
            if not match:
                if pattern.exclusion != matched:
                    results.append(False)
                    continue
                match = pattern.match(path)
                if not match and parent_dirs:
                    match = any(pattern.match("/".join(parent_dirs[: n + 1]))
                                for n in range(len(parent_dirs)))
            results.append(match)
            if match:
                matched = not pattern.exclusion
        return matched, results

    def may_include_below(self, directory: str) -> bool:
        """fsutil's pruning test: could an exception pattern name something inside ``directory``?"""
        return any(
            p.exclusion and _without_glob(p.text).startswith(directory + "/") for p in self.patterns
        )


def read_ignore_file(context: Path, dockerfile: Path) -> list[str]:
    """Patterns from <dockerfile>.dockerignore if present beside the Dockerfile, else
    context/.dockerignore, else [] — BuildKit's precedence, parsed like ignorefile.ReadAll."""
    specific = dockerfile.with_name(dockerfile.name + ".dockerignore")
    found = next((f for f in (specific, context / ".dockerignore") if f.is_file()), None)
    if found is None:
        return []
    text = found.read_bytes().removeprefix(b"\xef\xbb\xbf").decode(errors="surrogateescape")
    patterns = []
    for line in text.split("\n"):
        line = line.removesuffix("\r")
        if line.startswith("#") or not (line := line.strip(_SPACE)):
            continue
        invert = line.startswith("!")
        if invert:
            line = line[1:].strip(_SPACE)
        if line:
            line = _clean(line)
            line = line[1:] if len(line) > 1 and line.startswith("/") else line
        patterns.append("!" + line if invert else line)
    return patterns


def _walk(context: Path, dockerfile: Path, skip: tuple[Path, ...]) -> Iterator[tuple]:
    """Yield (relative, kind, stat) of every sent entry, pruned like fsutil's filter walker.

    One ``lstat`` per file or link and none per folder (the dirent says it is one; its stat
    is None): a no-op run stats the context and reads nothing. Order is scandir's; callers
    sort what they compare. A generator, so the 10,000s of tuples die young and never wake
    the cyclic GC.
    """
    matcher = PatternMatcher(read_ignore_file(context, dockerfile))
    prune = not any(p.exclusion and _PATTERN_CHARS & set(_without_glob(p.text))
                    for p in matcher.patterns)
    skipped = {(s.st_dev, s.st_ino) for s in (os.stat(p) for p in skip if os.path.isdir(p))}
    skipped_inodes = {inode for _, inode in skipped}
    matches = matcher._matches if matcher.patterns else None  # no .dockerignore: send all
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
    return sorted(path for path, kind, _ in _walk(context, dockerfile, ()) if kind != "dir")


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
        return self._digest(context, relative, os.lstat(context / relative))

    def _digest(self, context: Path, relative: str, info: os.stat_result) -> str:
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
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            tmp.write_text(json.dumps({"version": _CACHE_VERSION, "entries": entries},
                                      sort_keys=True))
            os.replace(tmp, self.path)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()


def context_entries(context: Path, dockerfile: Path, cache: StatCache | None = None,
                    skip: tuple[Path, ...] = ()) -> dict[str, str]:
    """What the build sends, as relative path → "kind:executable:content digest or target".

    Kept per build so a later run can say which entry changed, not only that one did.
    """
    cache = cache if cache is not None else StatCache(None)
    known, used, digest = cache.entries, cache._used, cache._digest
    entries = {}
    for relative, kind, info in _walk(context, dockerfile, skip):
        if kind == "file":
            # StatCache._digest inlined for a hit: 10,000 calls are ~4 ms of a no-op's walk
            mode = info.st_mode
            key = f"{info.st_size}:{info.st_mtime_ns}:{info.st_ino}:{mode}:"
            cached = known.get(relative)
            if cached is not None and cached.startswith(key):
                used[relative] = cached
                found = cached[len(key):]
            else:
                found = digest(context, relative, info)
            entries[relative] = ("file:1:" if mode & S_IXUSR else "file:0:") + found
        elif kind == "dir":
            entries[relative] = "dir:0:"
        else:
            entries[relative] = f"link:0:{os.readlink(os.path.join(context, relative))}"
    return entries


def cached_context_entries(context: Path, dockerfile: Path, cache_path: Path | None,
                           skip: tuple[Path, ...] = ()) -> dict[str, str]:
    """context_entries through a StatCache kept at ``cache_path`` between runs (None: no cache),
    so an unchanged context costs stats, not reads."""
    if cache_path is not None:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
    cache = StatCache(cache_path)
    entries = context_entries(context, dockerfile, cache, skip)
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
