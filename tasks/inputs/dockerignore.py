""".dockerignore as Docker reads it: the file's precedence and syntax, and moby's matcher."""

import re
from pathlib import Path

# Go's unicode.IsSpace set: str.strip() would also trim \x1c-\x1f, which strings.TrimSpace keeps.
_SPACE = " \t\n\v\f\r\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009" \
    "\u200a\u2028\u2029\u202f\u205f\u3000"
_ESCAPE = set(".+()|{}$")  # regexp specials that are literals in filepath.Match
_PATTERN_CHARS = set("*[]?^\\")  # fsutil: an exception holding one of these can match anywhere
_CLASS_CHAR = r"(?:\\.|[^\\\]-])"  # Go's getEsc: an escaped rune, or any but '\', ']' and '-'
# What Go's filepath.Match accepts: escapes complete, classes closed, non-empty, with sane ranges.
_GO_GLOB = re.compile(rf"(?:\\.|\[\^?+(?:{_CLASS_CHAR}(?:-{_CLASS_CHAR})?)+\]|[^\\\[])*", re.S)


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
        return self.matches_using_parents(path, [])[0]

    def matches_using_parents(self, path: str, parents: list[bool]) -> tuple[bool, list[bool]]:
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

    def prunes(self) -> bool:
        """Whether an excluded folder may be skipped whole (``may_include_below`` permitting):
        fsutil walks every excluded folder once an exception pattern holds a wildcard."""
        return not any(p.exclusion and _PATTERN_CHARS & set(_without_glob(p.text))
                       for p in self.patterns)

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
