"""What a Dockerfile pulls, read as BuildKit reads it: its own parser, then its stage rules."""

# The rules come from moby/buildkit's frontend/dockerfile: parser/ (directives), shell/lex.go
# (words), instructions/ (instructions and flags), dockerfile2llb/ convert.go, platform.go,
# convert_runmount.go and convert_copy.go (stages, args, platforms), dfgitutil/ (git sources).

import csv
import hashlib
import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field, replace
from functools import lru_cache
from urllib.parse import urlsplit

import dockerfile

from .fields import suggest
from .platforms import Platform, parse_platform
from .reference import repository_name, split_tag, validate_digest, validate_tag


class DockerfileError(ValueError):
    """A Dockerfile BuildKit would refuse, with the line it names (None: the whole file)."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(message, line)
        self.message = message
        self.line = line

    def __str__(self) -> str:
        return self.message if self.line is None else f"line {self.line}: {self.message}"


@dataclass(frozen=True)
class Pull:
    """One image a build pulls, and the platform it is pulled for."""

    reference: str  # as the Dockerfile names it, expanded
    platform: Platform
    stage: str  # the stage's name, its index as str, or "syntax" for the frontend
    line: int  # 1-based; 0 for a frontend named by the BUILDKIT_SYNTAX build arg
    instruction: str  # "FROM", "COPY --from", "RUN --mount" or "# syntax"


@dataclass(frozen=True)
class _Use:
    """A COPY --from or RUN --mount from= as written; None is a mount without from=."""

    source: str | None
    instruction: str
    line: int


@dataclass(frozen=True)
class _Add:
    source: str
    checksum: bool
    line: int


@dataclass(frozen=True)
class _Stage:
    base: str  # the FROM word as written
    name: str  # lowercased, "" for none
    platform: str  # the --platform value as written, "" for none
    line: int
    uses: tuple[_Use, ...]
    adds: tuple[_Add, ...]
    # ONBUILD: BuildKit runs these in a stage built FROM this one, at that stage's line, and
    # only fails on a bad one then.
    trigger_uses: tuple[_Use, ...]
    trigger_adds: tuple[_Add, ...]
    trigger_error: str | None


@dataclass(frozen=True, eq=False)
class Parsed:
    """A Dockerfile as far as it is known without build args, target or platforms.

    Compared by identity: parse() hands out one per distinct text, and pulls() caches on it.
    """

    escape: str
    syntax: tuple[str, int] | None  # the frontend image and its line
    args: tuple[tuple[str, str | None, int], ...]  # global ARGs: name, default as written, line
    stages: tuple[_Stage, ...]


_INSTRUCTIONS = frozenset({
    "add", "arg", "cmd", "copy", "entrypoint", "env", "expose", "from", "healthcheck", "label",
    "maintainer", "onbuild", "run", "shell", "stopsignal", "user", "volume", "workdir",
})
# instructions/parse.go's flags per instruction, with bflag.go's kinds.
_FROM_FLAGS = {"platform": "string"}
_COPY_FLAGS = {"chown": "string", "from": "string", "chmod": "string", "link": "bool",
               "parents": "bool", "exclude": "strings"}
_ADD_FLAGS = {"chown": "string", "chmod": "string", "checksum": "string", "link": "bool",
              "keep-git-dir": "bool", "unpack": "bool", "exclude": "strings"}
_STAGE_NAME = re.compile(r"[a-z][a-z0-9_.-]*")
_INDEX = re.compile(r"[+-]?[0-9]+")  # what Go's strconv.Atoi takes
_DIRECTIVE = re.compile(r"([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*\Z")
_ONBUILD = re.compile(r"^\s*ONBUILD\s*", re.IGNORECASE)
_PROTOCOL = re.compile(r"[a-zA-Z0-9]+://")
_SCP_STYLE = re.compile(r"[a-zA-Z0-9_-]+@[a-zA-Z0-9.-]+:")
_LINUX_AMD64 = Platform("linux", "amd64")
_CACHE_SIZE = 64
_parsed: OrderedDict[str, Parsed] = OrderedDict()


class _Lexer:
    """lex.go's ProcessWord on one word: quotes, escapes, $VAR and ${VAR<modifier>word}.

    ``env`` maps set names to values; a name absent from it is unset, which ${VAR-word},
    ${VAR+word} and ${VAR?word} tell apart from set but empty.
    """

    def __init__(self, word: str, env: Mapping[str, str], escape: str):
        self.word, self.at, self.env, self.escape, self.raw = word, 0, env, escape, False

    def peek(self) -> str:
        return self.word[self.at:self.at + 1]

    def next(self) -> str:
        ch = self.peek()
        self.at += len(ch)
        return ch

    def until(self, stop: str = "", raw: bool = False) -> str:
        """Up to ``stop`` (consumed) or the end; ``raw`` keeps escapes, as ${VAR#...} does."""
        saved, self.raw, out = self.raw, raw, []
        try:
            while ch := self.peek():
                if ch == stop:
                    self.next()
                    return "".join(out)
                if ch in "$'\"":
                    out.append({"$": self.dollar, "'": self.single, '"': self.double}[ch]())
                    continue
                self.next()
                if ch == self.escape:
                    if raw:
                        out.append(ch)
                    ch = self.next()  # "" at the end: a trailing escape is dropped
                out.append(ch)
        finally:
            self.raw = saved
        if stop:
            raise ValueError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(out)

    def single(self) -> str:
        self.next()
        end = self.word.find("'", self.at)
        if end < 0:
            raise ValueError("unexpected end of statement while looking for matching single-quote")
        text, self.at = self.word[self.at:end], end + 1
        return text

    def double(self) -> str:
        self.next()
        out = []
        while (ch := self.peek()) != '"':
            if not ch:
                raise ValueError(
                    "unexpected end of statement while looking for matching double-quote")
            if ch == "$":
                out.append(self.dollar())
                continue
            self.next()
            if ch == self.escape:
                if self.raw:
                    out.append(ch)
                if self.peek() in ('"', "$", self.escape):  # others keep the escape character
                    ch = self.next()
            out.append(ch)
        self.next()
        return "".join(out)

    def name(self) -> str:
        start, ch = self.at, self.peek()
        if ch.isdecimal():
            while self.peek().isdecimal():
                self.next()
        elif ch and ch in "@*#?-$!0":  # the shell's special parameters, one character
            self.next()
        else:
            while (ch := self.peek()) and (ch.isalpha() or ch.isdecimal() or ch == "_"):
                self.next()
        return self.word[start:self.at]

    def closed(self, stop: str, raw: bool, missing: str) -> str:
        try:
            return self.until(stop, raw)
        except ValueError:
            if self.peek():
                raise
            raise ValueError(f"syntax error: missing {missing}") from None

    def dollar(self) -> str:
        self.next()
        if self.peek() != "{":
            name = self.name()
            return self.env.get(name, "") if name else "$"
        self.next()
        if not self.peek():
            raise ValueError("syntax error: missing '}'")
        if self.peek() in "{}:":
            raise ValueError("syntax error: bad substitution")
        name = self.name()
        ch = self.next()
        if ch == "}":
            return self.env.get(name, "")
        if ch == "/":
            return self.substitute(name)
        modifier = ch
        if ch == ":":  # ${VAR:-word}: empty counts as unset
            ch = self.next()
            modifier += ch
        if ch not in ("-", "+", "?", "#", "%") or modifier in (":#", ":%"):
            raise ValueError(f"unsupported modifier ({modifier}) in substitution")
        word = self.closed("}", ch in "#%", "'}'")
        value = self.env.get(name)
        unset = value is None or (modifier[0] == ":" and value == "")
        if ch == "-":
            return word if unset else value
        if ch == "+":
            return "" if unset else word
        if ch == "?":
            if unset:
                default = "is not allowed to be " + ("unset" if value is None else "empty")
                raise ValueError(f"{name}: {word or default}")
            return value
        greedy = word[:1] == ch  # ## and %% take the longest match
        pattern = word[1:] if greedy else word
        if ch == "#":
            return _trim_prefix(pattern, value or "", greedy)
        return _trim_prefix(_reverse_pattern(pattern), (value or "")[::-1], greedy)[::-1]

    def substitute(self, name: str) -> str:
        every = self.peek() == "/"
        if every:
            self.next()
        pattern = self.closed("/", True, "'/' in ${}")
        replacement = self.closed("}", True, "'}'")
        regex = _shell_pattern(pattern, greedy=True, anchored=False)
        value = self.env.get(name, "")
        if every:  # Go's ReplaceAllString reads $ in the replacement as a template
            return regex.sub(lambda match: _go_template(replacement, match), value)
        return regex.sub(lambda _: replacement, value, count=1)


def _shell_pattern(pattern: str, greedy: bool, anchored: bool) -> re.Pattern:
    """lex.go's convertShellPatternToRegex: * and ? wildcards, \\ escapes, no brackets."""
    out, at = ["^"] if anchored else [], 0
    while at < len(pattern):
        ch, at = pattern[at], at + 1
        if ch == "*":
            out.append(".*" if greedy else ".*?")
        elif ch == "?":
            out.append(".")
        elif ch == "\\":
            if pattern[at:at + 1] in ("}", "/") and at < len(pattern):
                continue
            escaped, at = pattern[at:at + 1], at + 1
            if escaped not in ("*", "?", "\\") or not escaped:
                raise ValueError(f"invalid pattern ({pattern}) in substitution:"
                                 f" invalid escape '\\{escaped}'")
            out.append("\\" + escaped)
        else:
            out.append("\\" + ch if ch in "[](){}.+|^$" else ch)
    return re.compile("".join(out))


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    match = _shell_pattern(pattern, greedy, anchored=True).search(value)
    return value[match.end():] if match else value


def _reverse_pattern(pattern: str) -> str:
    """The pattern read backwards with each escape kept before what it escapes: a suffix
    is trimmed as the prefix of the reversed value, as lex.go's trimSuffix does."""
    parts, at = [], 0
    while at < len(pattern):
        size = 2 if pattern[at] == "\\" and at < len(pattern) - 1 else 1
        parts.append(pattern[at:at + size])
        at += size
    return "".join(reversed(parts))


def _go_template(template: str, match: re.Match) -> str:
    """regexp.Expand: $0 or ${0} is the match, $$ a dollar, other names (the pattern has no
    groups) nothing, and a $ naming nothing stays."""

    def one(ref: re.Match) -> str:
        name = ref[1] or ref[2]
        if ref[0] == "$$" or name is None:
            return "$"
        return match[0] if name.isdecimal() and int(name) == 0 else ""

    return re.sub(r"\$(?:\$|\{(\w+)\}|(\w+))?", one, template)


def _expand(word: str, env: Mapping[str, str], escape: str, line: int) -> str:
    try:
        return _Lexer(word, env, escape).until()
    except ValueError as err:
        raise DockerfileError(f"failed to process {word!r}: {err}", line) from None


def _directives(lines: list[str], strip: bool) -> dict[str, tuple[str, int]]:
    """Leading `# key=value` lines (syntax, escape, check) and their lines, as directives.go
    reads them: the first other line ends them. ``strip``: the parser skips leading space
    on a line, the syntax detection does not."""
    found: dict[str, tuple[str, int]] = {}
    for number, line in enumerate(lines, 1):
        line = line.rstrip("\r")
        if strip:
            line = line.lstrip()
        match = line.startswith("#") and _DIRECTIVE.match(line[1:].lstrip())
        if not match or match[1].lower() not in ("syntax", "escape", "check"):
            break
        found.setdefault(match[1].lower(), (match[2], number))
    return found


def _failing_line(text: str, message: str) -> int | None:
    """The line the parser rejects: the binding drops the Go error's location, so this is the
    shortest prefix of the file that fails alike."""
    if message == "file with no instructions":
        return None
    lines = text.split("\n")

    def fails(count: int) -> bool:
        try:
            dockerfile.parse_string("\n".join(lines[:count]))
        except dockerfile.GoParseError as err:
            return str(err) == message
        return False

    low, high = 1, len(lines)
    while low < high:
        middle = (low + high) // 2
        low, high = (low, middle) if fails(middle) else (middle + 1, high)
    return low


def _flags(cmd: dockerfile.Command, allowed: Mapping[str, str]) -> dict:
    """An instruction's flags as bflag.go takes them: known names, once each (a repeatable
    one as a list), a value where one is needed."""
    values: dict = {}
    line = cmd.start_line
    for flag in cmd.flags:
        if flag == "--":
            break
        if not flag.startswith("--"):
            raise DockerfileError(f"arg should start with -- : {flag}", line)
        name, has_value, value = flag[2:].partition("=")
        kind = allowed.get(name)
        if kind is None:
            raise DockerfileError(f"unknown flag: --{name}{suggest(name, allowed)}", line)
        if name in values and kind != "strings":
            raise DockerfileError(f"duplicate flag specified: --{name}", line)
        if kind == "bool":
            if (has_value and not value) or value.lower() not in ("", "true", "false"):
                raise DockerfileError(f"expecting boolean value for flag --{name}, not: {value}",
                                      line)
            values[name] = value.lower() != "false"
        elif not has_value:
            raise DockerfileError(f"missing a value on flag: --{name}", line)
        elif kind == "strings":
            values.setdefault(name, []).append(value)
        else:
            values[name] = value
    return values


def _arg_pairs(cmd: dockerfile.Command) -> list[tuple[str, str | None, int]]:
    if not cmd.value:
        raise DockerfileError("ARG requires at least one argument", cmd.start_line)
    pairs = []
    for item in cmd.value:
        name, has_default, default = item.partition("=")
        if not name:
            raise DockerfileError("ARG names can not be blank", cmd.start_line)
        pairs.append((name, default if has_default else None, cmd.start_line))
    return pairs


def _mount_source(spec: str, line: int) -> str | None:
    """The from= of a --mount. BuildKit picks the source stage or image from it as written,
    before any expansion, and so refuses a $ in it (but a last one)."""
    try:
        fields = next(csv.reader([spec]), [])
    except csv.Error as err:
        raise DockerfileError(f"failed to parse csv mounts: {err}", line) from None
    source = None
    for item in fields:
        key, has_value, value = item.partition("=")
        if has_value and key.lower() == "from":
            if "$" in value[:-1]:
                raise DockerfileError(
                    "'from' doesn't support variable expansion, define alias stage instead", line)
            source = value
    return source


def _kind(cmd: dockerfile.Command) -> str:
    """The instruction, lowercase; a lone escape on the last line is an empty one."""
    kind = (cmd.cmd or "").lower()
    if kind not in _INSTRUCTIONS:
        raise DockerfileError(f"unknown instruction: {kind.upper()!r}", cmd.start_line)
    return kind


def _read(cmd: dockerfile.Command, escape: str, uses: list, adds: list) -> None:
    """Check one instruction of a stage as instructions.Parse would, keeping what it reads."""
    kind, line = _kind(cmd), cmd.start_line
    if kind == "arg":
        _arg_pairs(cmd)
    elif kind in ("copy", "add"):
        flags = _flags(cmd, _COPY_FLAGS if kind == "copy" else _ADD_FLAGS)
        if len(cmd.value) < 2:
            raise DockerfileError(f"{kind.upper()} requires at least two arguments, but only one"
                                  " was provided. Destination could not be determined", line)
        if kind == "add":
            adds.extend(_Add(source, "checksum" in flags, line) for source in cmd.value[:-1])
        elif source := flags.get("from"):
            # convert.go's toCommand: the name is matched as written, so it must not change.
            if _expand(source, {}, escape, line) != source:
                raise DockerfileError(
                    "variable expansion is not supported for --from, define a new stage with"
                    " FROM using ARG from global scope as a workaround", line)
            uses.append(_Use(source, "COPY --from", line))
    elif kind == "run":
        for flag in cmd.flags:
            if flag == "--mount":
                raise DockerfileError("missing a value on flag: --mount", line)
            if flag.startswith("--mount="):
                uses.append(_Use(_mount_source(flag[len("--mount="):], line), "RUN --mount", line))


def _trigger(cmd: dockerfile.Command, lines: list[str], escape: str):
    """An ONBUILD's uses and ADDs, or the error BuildKit gives when a stage runs it."""
    trigger = (cmd.sub_cmd or "").upper()
    if not trigger:
        raise DockerfileError("ONBUILD requires at least one argument", cmd.start_line)
    if trigger == "ONBUILD":
        raise DockerfileError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
                              cmd.start_line)
    if trigger in ("MAINTAINER", "FROM"):
        raise DockerfileError(f"{trigger} isn't allowed as an ONBUILD trigger", cmd.start_line)
    # From the file's own lines: the binding leaves an ONBUILD's heredoc bodies out.
    source = _ONBUILD.sub("", "\n".join(lines[cmd.start_line - 1:cmd.end_line]), count=1)
    if escape != "\\":
        source = f"# escape={escape}\n{source}"
    uses, adds = [], []
    try:
        commands = dockerfile.parse_string(source)
        if len(commands) != 1:
            return (), (), "onbuild trigger should be a single expression"
        _read(commands[0], escape, uses, adds)
    except dockerfile.GoParseError as err:
        return (), (), str(err)
    except DockerfileError as err:
        return (), (), err.message
    return tuple(uses), tuple(adds), None


def _stage(head: dockerfile.Command, body: list, lines: list[str], escape: str) -> _Stage:
    words, line, name = head.value, head.start_line, ""
    if len(words) == 3 and words[1].lower() == "as":
        name = words[2].lower()
        if not _STAGE_NAME.fullmatch(name):
            raise DockerfileError(f"invalid name for build stage: {words[2]!r}, name can't start"
                                  " with a number or contain symbols", line)
    elif len(words) != 1:
        raise DockerfileError("FROM requires either one or three arguments", line)
    platform = _flags(head, _FROM_FLAGS).get("platform", "")
    uses, adds, trigger_uses, trigger_adds, trigger_error = [], [], [], [], None
    for cmd in body:
        if _kind(cmd) != "onbuild":
            _read(cmd, escape, uses, adds)
            continue
        more_uses, more_adds, error = _trigger(cmd, lines, escape)
        trigger_uses += more_uses
        trigger_adds += more_adds
        trigger_error = trigger_error or error
    return _Stage(words[0], name, platform, line, tuple(uses), tuple(adds),
                  tuple(trigger_uses), tuple(trigger_adds), trigger_error)


def _parse(text: str) -> Parsed:
    try:
        commands = dockerfile.parse_string(text)
    except dockerfile.GoParseError as err:
        raise DockerfileError(str(err), _failing_line(text, str(err))) from None
    lines = text.removeprefix("\ufeff").split("\n")
    # The binding applies `# escape=` itself; the words it returns still carry the escapes.
    escape = _directives(lines, strip=True).get("escape", ("\\", 0))[0]
    # builder/build.go forwards to the `# syntax=` image before parsing; its detection skips
    # a #! first line, and the image is the value's first word.
    offset = 1 if lines[0].startswith("#!") else 0
    syntax = _directives(lines[offset:], strip=False).get("syntax")
    if syntax:
        syntax = (syntax[0].split(" ", 1)[0], syntax[1] + offset)
    args, groups = [], []
    for cmd in commands:
        kind = _kind(cmd)
        if kind == "from":
            groups.append((cmd, []))
        elif groups:
            groups[-1][1].append(cmd)
        elif kind == "arg":
            args += _arg_pairs(cmd)
        else:
            raise DockerfileError("no build stage in current context", cmd.start_line)
    if not groups:
        raise DockerfileError("dockerfile contains no stages to build")
    stages = tuple(_stage(head, body, lines, escape) for head, body in groups)
    return Parsed(escape, syntax, tuple(args), stages)


def parse(text: str) -> Parsed:
    """Parse with BuildKit's own parser and check what instructions.Parse checks.

    Parsed once per distinct text: a run asks for each image and platform.

    Raises:
        DockerfileError: the parser or an instruction rejects the text.
    """
    key = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    found = _parsed.get(key)
    if found is not None:
        with suppress(KeyError):
            _parsed.move_to_end(key)
        return found
    found = _parsed[key] = _parse(text)
    while len(_parsed) > _CACHE_SIZE:
        with suppress(KeyError):
            _parsed.popitem(last=False)
    return found


@dataclass(eq=False)
class _State:
    """One of convert.go's dispatch states: a stage, or an image or scratch a stage reads."""

    index: int
    ref: str  # the expanded FROM word, or the source as written
    line: int
    instruction: str
    stage: _Stage | None = None  # None: named by a --from or from= that is no stage
    base: "_State | None" = None
    platform: Platform | None = None
    deps: list[tuple["_State", _Use]] = field(default_factory=list)
    triggered: bool = False

    @property
    def image(self) -> bool:
        return self.base is None and self.ref != "scratch"

    def label(self, go: bool = False) -> str:
        """The name, else the index; convert.go's messages say stage-N."""
        return self.stage.name or (f"stage-{self.index}" if go else str(self.index))


def _platform_args(target: Platform, build: Platform, stage: str) -> dict[str, str]:
    # platform.go's defaultArgs: set in every build, declared by ARG or not, so FROM and
    # --platform see them; a build arg of the same name overrides one.
    return {
        "BUILDPLATFORM": str(build), "BUILDOS": build.os, "BUILDOSVERSION": "",
        "BUILDARCH": build.architecture, "BUILDVARIANT": build.variant,
        "TARGETPLATFORM": str(target), "TARGETOS": target.os, "TARGETOSVERSION": "",
        "TARGETARCH": target.architecture, "TARGETVARIANT": target.variant,
        "TARGETSTAGE": stage,
    }


def _source(use: _Use, states: list[_State], names: dict[str, _State]) -> _State:
    """toCommand and detectRunMount: a stage by name (any stage, later ones too) or, for
    COPY --from only, by index in the states so far; else a new image state."""
    name = use.source or "scratch"
    if use.instruction == "COPY --from" and _INDEX.fullmatch(name):
        if not 0 <= int(name) < len(states):
            raise DockerfileError(f"invalid stage index {int(name)}", use.line)
        return states[int(name)]
    if name.lower() in names:
        return names[name.lower()]
    states.append(_State(len(states), name, use.line, use.instruction))
    return states[-1]


def _check_cycles(states: list[_State]) -> None:
    visited, path = set(), set()

    def visit(state: _State) -> _Use | None:
        if state in visited:
            return None
        visited.add(state)
        path.add(state)
        for dep, use in state.deps:
            if dep in path or (use := visit(dep)):
                return use
        path.discard(state)
        return None

    for state in states:
        if use := visit(state):
            raise DockerfileError(
                f"circular dependency detected on stage: {state.label(go=True)}", use.line)


def _reachable(target: _State) -> set[_State]:
    seen, todo = set(), [target]
    while todo:
        state = todo.pop()
        if state not in seen:
            seen.add(state)
            todo += [state.base] if state.base else []
            todo += [dep for dep, _ in state.deps]
    return seen


def _check_reference(state: _State) -> None:
    """resolveBaseImage parses every base and --from image, reached or not."""
    name, _, digest = state.ref.partition("@")
    repository, tag = split_tag(name)
    try:
        if name.endswith(":") or state.ref.endswith("@"):
            raise ValueError("empty tag or digest")
        repository_name(repository, None)
        validate_tag(tag)
        if digest:
            validate_digest(digest)
    except ValueError as err:
        raise DockerfileError(f"{state.instruction} {state.ref}: {err}", state.line) from None


def _untracked(add: _Add) -> str | None:
    """An ADD whose content BuildKit fetches unpinned (convert_copy.go, dfgitutil)."""
    source = add.source.strip("\"'")
    if add.checksum or source.startswith(("./", "../", "github.com/")):
        return None  # github.com/... is a local path to ADD
    protocol = _PROTOCOL.match(source)
    scheme = protocol[0][:-3].lower() if protocol else ""
    if scheme in ("git", "ssh") or (not protocol and _SCP_STYLE.match(source)) or (
            scheme in ("http", "https") and urlsplit(source).path.endswith(".git")):
        return f"line {add.line}: ADD {source}: a git source without --checksum is not tracked"
    if scheme in ("http", "https"):
        return f"line {add.line}: ADD {source}: a URL without --checksum is not tracked"
    return None


@lru_cache(maxsize=256)
def _plan(parsed: Parsed, build_args: tuple[tuple[str, str], ...], target: str | None,
          target_platform: Platform, build_platform: Platform):
    """(pulls, untracked) of one build, following convert.go's toDispatchState."""
    args, escape, stages = dict(build_args), parsed.escape, parsed.stages
    env = _platform_args(target_platform, build_platform, target or stages[-1].name or "default")
    env.update((name, args[name]) for name in env.keys() & args.keys())
    # buildMetaArgs: a build arg replaces only a declared ARG; no default and no build arg is
    # unset; a default is expanded in the scope so far.
    for name, default, line in parsed.args:
        if name in args:
            env[name] = args[name]
        elif default is not None:
            env[name] = _expand(default, env, escape, line)

    # buildDispatchStates: FROM sees the global scope only, and an earlier stage by its exact
    # expanded name (names are lowercase, so FROM Build is an image, which fails to parse).
    states: list[_State] = []
    names: dict[str, _State] = {}
    for index, stage in enumerate(stages):
        ref = _expand(stage.base, env, escape, stage.line)
        if not ref:
            raise DockerfileError(f"base name ({stage.base}) should not be blank", stage.line)
        state = _State(index, ref, stage.line, "FROM", stage, names.get(ref))
        if stage.platform:
            value = _expand(stage.platform, env, escape, stage.line)
            if not value:
                raise DockerfileError(
                    f"empty platform value from expression {stage.platform}", stage.line)
            try:
                state.platform = parse_platform(value)
            except ValueError as err:
                raise DockerfileError(f"FROM --platform={stage.platform}: {err}",
                                      stage.line) from None
        states.append(state)
        if stage.name:
            names[stage.name] = state
    final = states[-1] if target is None else names.get(target.lower())
    if final is None:
        raise DockerfileError(
            f"target stage {target!r} could not be found{suggest(target.lower(), names)}")

    # buildStageDependencyGraph, then resolveStages: a stage built FROM another stage runs
    # that stage's ONBUILD triggers, which may reach further stages and images.
    for state in states[:len(stages)]:
        state.deps = [(_source(use, states, names), use) for use in state.stage.uses]
    _check_cycles(states)
    reachable, grown = _reachable(final), True
    while grown:
        grown = False
        for state in [state for state in states if state in reachable]:
            if state.base is None or state.triggered:
                continue
            state.triggered = True
            if state.base.stage.trigger_error:
                raise DockerfileError(state.base.stage.trigger_error, state.line)
            uses = [replace(use, line=state.line) for use in state.base.stage.trigger_uses]
            state.deps[:0] = [(_source(use, states, names), use) for use in uses]
            grown = grown or bool(uses)
        reachable = _reachable(final)
    for state in states:
        if state.image:
            _check_reference(state)

    # dispatchStages: reached stages in order; a stage reads only from one dispatched before.
    # Its platform: its base stage's (init() overrides its own --platform), scratch's is the
    # target, else its --platform or the target. An image a --from or from= names is a state
    # of its own with no platform, so resolveBaseImage pulls it for the target platform.
    found, unpinned = [], []
    for state in states[:len(stages)]:
        if state.base is not None:
            state.platform = state.base.platform
        elif state.ref == "scratch" or state.platform is None:
            state.platform = target_platform
        if state not in reachable:
            continue
        if state.image:
            found.append(Pull(state.ref, state.platform, state.label(), state.line, "FROM"))
        for dep, use in state.deps:
            if dep.stage is not None and dep.index > state.index and use.source:
                if use.instruction == "COPY --from":
                    raise DockerfileError(f"cannot copy from stage {use.source!r}, it needs to be"
                                          f" defined before current stage"
                                          f" {state.label(go=True)!r}", use.line)
                raise DockerfileError(f"cannot mount from stage {use.source!r}, stage needs to"
                                      " be defined before current command", use.line)
            if dep.stage is None and dep.image:
                found.append(Pull(dep.ref, target_platform, state.label(), use.line,
                                  use.instruction))
        triggered = state.base.stage.trigger_adds if state.triggered else ()
        adds = [replace(add, line=state.line) for add in triggered] + list(state.stage.adds)
        unpinned += filter(None, map(_untracked, adds))

    # The frontend image runs on the build platform; BUILDKIT_SYNTAX replaces the directive.
    syntax = parsed.syntax
    if "BUILDKIT_SYNTAX" in args:
        syntax = (args["BUILDKIT_SYNTAX"].strip().split(" ", 1)[0], 0)
    if syntax and syntax[0]:
        found.insert(0, Pull(syntax[0], build_platform, "syntax", syntax[1], "# syntax"))
    return tuple(found), tuple(unpinned)


def pulls(parsed: Parsed, build_args: Mapping[str, str], target: str | None,
          target_platform: Platform, build_platform: Platform) -> tuple[Pull, ...]:
    """Every image one build pulls, each with the platform it is pulled for, in line order.

    Only the stages ``target`` (None: the last stage) reaches count, through FROM, COPY
    --from, RUN --mount from= and ONBUILD triggers of a base stage.

    Raises:
        DockerfileError: an expansion fails, a base or platform is empty or invalid, an
            unknown target or stage index, a cycle, or a read from a later stage.
    """
    return _plan(parsed, tuple(sorted(build_args.items())), target, target_platform,
                 build_platform)[0]


def untracked(parsed: Parsed, build_args: Mapping[str, str], target: str | None,
              target_platform: Platform, build_platform: Platform) -> tuple[str, ...]:
    """One line for each input of the build no digest can cover: ADD of a URL without
    --checksum or of a git source. Raises as pulls() does."""
    return _plan(parsed, tuple(sorted(build_args.items())), target, target_platform,
                 build_platform)[1]


def referenced_images(text: str, build_args: Mapping[str, str], *,
                      platforms: Iterable[Platform] | None = None,
                      build_platform: Platform | None = None,
                      target: str | None = None) -> list[str]:
    """Every reference a build of any of ``platforms`` pulls, first seen first: what an image
    of the manifest is built from. Both platforms default to linux/amd64.

    Raises:
        DockerfileError: as parse() and pulls() do.
    """
    parsed = parse(text)
    refs: dict[str, None] = {}
    for platform in tuple(platforms or ()) or (_LINUX_AMD64,):
        for pull in pulls(parsed, build_args, target, platform, build_platform or _LINUX_AMD64):
            refs.setdefault(pull.reference)
    return list(refs)
