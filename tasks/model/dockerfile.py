"""What a Dockerfile pulls, read as BuildKit reads it: its own parser, then its stage rules."""

# The rules come from moby/buildkit's frontend/dockerfile: dockerfile2llb/ convert.go,
# platform.go, convert_runmount.go and convert_copy.go (stages, args, platforms), dfgitutil/
# (git sources). Reading the text is instructions.py's, expanding a word shellwords.py's.

import hashlib
import json
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from .fields import suggest
from .files import write_atomic
from .instructions import Add, DockerfileError, Parsed, Stage, Use, expand, from_json, read, to_json
from .platforms import Platform, parse_platform
from .reference import repository_name, split_tag, validate_digest, validate_tag

__all__ = ["DockerfileError", "Parsed", "Pull", "parse", "parse_cached", "pulls",
           "referenced_images", "untracked"]


@dataclass(frozen=True)
class Pull:
    """One image a build pulls, and the platform it is pulled for."""

    reference: str  # as the Dockerfile names it, expanded
    platform: Platform
    stage: str  # the stage's name, its index as str, or "syntax" for the frontend
    line: int  # 1-based; 0 for a frontend named by the BUILDKIT_SYNTAX build arg
    instruction: str  # "FROM", "COPY --from", "RUN --mount" or "# syntax"


_INDEX = re.compile(r"[+-]?[0-9]+")  # what Go's strconv.Atoi takes
_PROTOCOL = re.compile(r"[a-zA-Z0-9]+://")
_SCP_STYLE = re.compile(r"[a-zA-Z0-9_-]+@[a-zA-Z0-9.-]+:")
_LINUX_AMD64 = Platform("linux", "amd64")
_CACHE_SIZE = 64
_parsed: OrderedDict[str, Parsed] = OrderedDict()


def _remember(key: str, make: Callable[[], Parsed]) -> Parsed:
    """The Parsed kept under ``key``, else ``make()``'s, kept: one object per distinct text."""
    found = _parsed.get(key)
    if found is not None:
        with suppress(KeyError):
            _parsed.move_to_end(key)
        return found
    found = _parsed[key] = make()
    while len(_parsed) > _CACHE_SIZE:
        with suppress(KeyError):
            _parsed.popitem(last=False)
    return found


def _key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def parse(text: str) -> Parsed:
    """Parse with BuildKit's own parser and check what instructions.Parse checks.

    Parsed once per distinct text: a run asks for each image and platform.

    Raises:
        DockerfileError: the parser or an instruction rejects the text.
    """
    return _remember(_key(text), lambda: read(text))


def parse_cached(text: str, cache_dir: Path | None) -> Parsed:
    """parse(), kept on disk as ``cache_dir/<sha256 of text>.json`` (None: in memory only).

    A hit reads the JSON and never loads the Go parser, so a run whose Dockerfiles are all
    unchanged never starts it. A file that is unreadable, corrupt or of another FORMAT is
    parsed again and rewritten; a failed write is ignored, as the cache only saves work. A
    text the parser rejects is not cached: it is parsed, and raises, each time it is asked.

    Raises:
        DockerfileError: as parse() does.
    """
    if cache_dir is None:
        return parse(text)
    key = _key(text)
    return _remember(key, lambda: _load_or_read(text, cache_dir / f"{key}.json"))


def _load_or_read(text: str, path: Path) -> Parsed:
    """The Parsed kept at ``path``, else read()'s, written there for the next run."""
    with suppress(OSError, ValueError):
        return from_json(json.loads(path.read_text(encoding="utf-8")))
    parsed = read(text)
    with suppress(OSError):
        write_atomic(path, json.dumps(to_json(parsed), separators=(",", ":")) + "\n")
    return parsed


@dataclass(eq=False)
class _State:
    """One of convert.go's dispatch states: a stage, or an image or scratch a stage reads."""

    index: int
    ref: str  # the expanded FROM word, or the source as written
    line: int
    instruction: str
    stage: Stage | None = None  # None: named by a --from or from= that is no stage
    base: "_State | None" = None
    platform: Platform | None = None
    deps: list[tuple["_State", Use]] = field(default_factory=list)
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


def _source(use: Use, states: list[_State], names: dict[str, _State]) -> _State:
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

    def visit(state: _State) -> Use | None:
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


def _untracked(add: Add) -> str | None:
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
            env[name] = expand(default, env, escape, line)

    # buildDispatchStates: FROM sees the global scope only, and an earlier stage by its exact
    # expanded name (names are lowercase, so FROM Build is an image, which fails to parse).
    states: list[_State] = []
    names: dict[str, _State] = {}
    for index, stage in enumerate(stages):
        ref = expand(stage.base, env, escape, stage.line)
        if not ref:
            raise DockerfileError(f"base name ({stage.base}) should not be blank", stage.line)
        state = _State(index, ref, stage.line, "FROM", stage, names.get(ref))
        if stage.platform:
            value = expand(stage.platform, env, escape, stage.line)
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
