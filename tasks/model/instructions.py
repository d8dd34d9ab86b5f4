"""A Dockerfile's stages as BuildKit's parser and instructions.Parse read them, and as JSON."""

# The rules come from moby/buildkit's frontend/dockerfile: parser/ (directives) and
# instructions/ (instructions and flags). What a build of the stages pulls is dockerfile.py's.

import csv
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .fields import suggest
from .shellwords import WordError, process_word

if TYPE_CHECKING:
    from dockerfile import Command

# The JSON's version: bump it when to_json's shape or what read() keeps or checks changes,
# so that a parse cache written before is read again rather than trusted.
FORMAT = 1


class DockerfileError(ValueError):
    """A Dockerfile BuildKit would refuse, with the line it names (None: the whole file)."""

    def __init__(self, message: str, line: int | None = None):
        super().__init__(message, line)
        self.message = message
        self.line = line

    def __str__(self) -> str:
        return self.message if self.line is None else f"line {self.line}: {self.message}"


@dataclass(frozen=True)
class Use:
    """A COPY --from or RUN --mount from= as written; None is a mount without from=."""

    source: str | None
    instruction: str  # "COPY --from" or "RUN --mount"
    line: int


@dataclass(frozen=True)
class Add:
    source: str
    checksum: bool
    line: int


@dataclass(frozen=True)
class Stage:
    base: str  # the FROM word as written
    name: str  # lowercased, "" for none
    platform: str  # the --platform value as written, "" for none
    line: int
    uses: tuple[Use, ...]
    adds: tuple[Add, ...]
    # ONBUILD: BuildKit runs these in a stage built FROM this one, at that stage's line, and
    # only fails on a bad one then.
    trigger_uses: tuple[Use, ...]
    trigger_adds: tuple[Add, ...]
    trigger_error: str | None


@dataclass(frozen=True, eq=False)
class Parsed:
    """A Dockerfile as far as it is known without build args, target or platforms.

    Compared by identity: dockerfile.parse() and parse_cached() hand out one per distinct
    text, and pulls() caches on it.
    """

    escape: str
    syntax: tuple[str, int] | None  # the frontend image and its line
    args: tuple[tuple[str, str | None, int], ...]  # global ARGs: name, default as written, line
    stages: tuple[Stage, ...]


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
_DIRECTIVE = re.compile(r"([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*\Z")
_ONBUILD = re.compile(r"^\s*ONBUILD\s*", re.IGNORECASE)


def expand(word: str, env: Mapping[str, str], escape: str, line: int) -> str:
    """shellwords.process_word, failing as BuildKit reports it, on the instruction's line."""
    try:
        return process_word(word, env, escape)
    except WordError as err:
        raise DockerfileError(f"failed to process {word!r}: {err}", line) from None


def _go_parse(text: str) -> tuple["Command", ...]:
    """BuildKit's parser, through the `dockerfile` binding; its errors carry no line."""
    # Imported here, in the one call into Go: loading the binding starts a Go runtime, which
    # a run that finds every Dockerfile in the parse cache (dockerfile.parse_cached) never needs.
    import dockerfile

    try:
        return dockerfile.parse_string(text)
    except dockerfile.GoParseError as err:
        raise DockerfileError(str(err)) from None


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
            _go_parse("\n".join(lines[:count]))
        except DockerfileError as err:
            return err.message == message
        return False

    low, high = 1, len(lines)
    while low < high:
        middle = (low + high) // 2
        low, high = (low, middle) if fails(middle) else (middle + 1, high)
    return low


def _flags(cmd: "Command", allowed: Mapping[str, str]) -> dict:
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


def _arg_pairs(cmd: "Command") -> list[tuple[str, str | None, int]]:
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


def _kind(cmd: "Command") -> str:
    """The instruction, lowercase; a lone escape on the last line is an empty one."""
    kind = (cmd.cmd or "").lower()
    if kind not in _INSTRUCTIONS:
        raise DockerfileError(f"unknown instruction: {kind.upper()!r}", cmd.start_line)
    return kind


def _read(cmd: "Command", escape: str, uses: list, adds: list) -> None:
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
            adds.extend(Add(source, "checksum" in flags, line) for source in cmd.value[:-1])
        elif source := flags.get("from"):
            # convert.go's toCommand: the name is matched as written, so it must not change.
            if expand(source, {}, escape, line) != source:
                raise DockerfileError(
                    "variable expansion is not supported for --from, define a new stage with"
                    " FROM using ARG from global scope as a workaround", line)
            uses.append(Use(source, "COPY --from", line))
    elif kind == "run":
        for flag in cmd.flags:
            if flag == "--mount":
                raise DockerfileError("missing a value on flag: --mount", line)
            if flag.startswith("--mount="):
                uses.append(Use(_mount_source(flag[len("--mount="):], line), "RUN --mount", line))


def _trigger(cmd: "Command", lines: list[str], escape: str):
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
        commands = _go_parse(source)
        if len(commands) != 1:
            return (), (), "onbuild trigger should be a single expression"
        _read(commands[0], escape, uses, adds)
    except DockerfileError as err:
        return (), (), err.message
    return tuple(uses), tuple(adds), None


def _stage(head: "Command", body: list, lines: list[str], escape: str) -> Stage:
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
    return Stage(words[0], name, platform, line, tuple(uses), tuple(adds),
                 tuple(trigger_uses), tuple(trigger_adds), trigger_error)


def read(text: str) -> Parsed:
    """Parse with BuildKit's own parser and check what instructions.Parse checks; uncached.

    Raises:
        DockerfileError: the parser or an instruction rejects the text.
    """
    try:
        commands = _go_parse(text)
    except DockerfileError as err:
        raise DockerfileError(err.message, _failing_line(text, err.message)) from None
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


def to_json(parsed: Parsed) -> dict:
    """``parsed`` as plain JSON values, under the FORMAT version from_json checks."""

    def uses(items: tuple[Use, ...]) -> list:
        return [[use.source, use.instruction, use.line] for use in items]

    def adds(items: tuple[Add, ...]) -> list:
        return [[add.source, add.checksum, add.line] for add in items]

    return {
        "format": FORMAT,
        "escape": parsed.escape,
        "syntax": None if parsed.syntax is None else list(parsed.syntax),
        "args": [list(arg) for arg in parsed.args],
        "stages": [{"base": stage.base, "name": stage.name, "platform": stage.platform,
                    "line": stage.line, "uses": uses(stage.uses), "adds": adds(stage.adds),
                    "trigger_uses": uses(stage.trigger_uses),
                    "trigger_adds": adds(stage.trigger_adds),
                    "trigger_error": stage.trigger_error} for stage in parsed.stages],
    }


def _typed(value, *kinds: type):
    """``value`` if its type is one of ``kinds`` exactly (so True is no line number)."""
    if type(value) not in kinds:
        raise ValueError(f"{value!r} is not {' or '.join(kind.__name__ for kind in kinds)}")
    return value


def from_json(data) -> Parsed:
    """What to_json wrote, checked field by field: a cache file is trusted only so far.

    Raises:
        ValueError: another FORMAT, or not the shape to_json writes.
    """
    none = type(None)

    def uses(items: list) -> tuple[Use, ...]:
        found = tuple(Use(_typed(source, str, none), _typed(instruction, str), _typed(line, int))
                      for source, instruction, line in _typed(items, list))
        if any(use.instruction not in ("COPY --from", "RUN --mount") for use in found):
            raise ValueError("an instruction that is no COPY --from or RUN --mount")
        return found

    def adds(items: list) -> tuple[Add, ...]:
        return tuple(Add(_typed(source, str), _typed(checksum, bool), _typed(line, int))
                     for source, checksum, line in _typed(items, list))

    try:
        if _typed(data, dict).get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r}, not {FORMAT}")
        syntax = _typed(data["syntax"], list, none)
        if syntax is not None:
            image, line = syntax
            syntax = (_typed(image, str), _typed(line, int))
        args = tuple((_typed(name, str), _typed(default, str, none), _typed(line, int))
                     for name, default, line in _typed(data["args"], list))
        stages = tuple(
            Stage(_typed(stage["base"], str), _typed(stage["name"], str),
                  _typed(stage["platform"], str), _typed(stage["line"], int),
                  uses(stage["uses"]), adds(stage["adds"]), uses(stage["trigger_uses"]),
                  adds(stage["trigger_adds"]), _typed(stage["trigger_error"], str, none))
            for stage in _typed(data["stages"], list))
        if not stages or data["escape"] not in ("\\", "`"):
            raise ValueError("no stages, or an escape that is neither \\ nor `")
    except (KeyError, TypeError) as err:
        raise ValueError(f"not a parsed Dockerfile: {err!r}") from None
    return Parsed(data["escape"], syntax, args, stages)
