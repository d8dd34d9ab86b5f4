"""multiarch.yaml, parsed into frozen dataclasses with every default applied."""

import difflib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from tasks.errors import ManifestError
from tasks.graph import find_cycle, referenced_images, split_tag
from tasks.platforms import Platform, parse_platforms
from tasks.reference import repository_name, validate_registry, validate_tag

MANIFEST_VERSION = 1
DEFAULT_TAGS = ("latest",)
# Per-platform tags are "<tag>-<suffix>"; the longest suffix of a known platform is 11
# ("mips64p32le"), but the check below uses the image's real platforms.
_IMAGE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_BUILD_ARG_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_STAGE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")
_TAG_MAX = 128


@dataclass(frozen=True)
class Image:
    """One image of the manifest: what to build, for which platforms, and where to push."""

    name: str
    context: Path
    dockerfile: Path
    repository: str
    tags: tuple[str, ...]
    platforms: tuple[Platform, ...]
    build_args: tuple[tuple[str, str], ...] = ()
    target: str | None = None
    pull: bool = True
    depends_on: tuple[str, ...] = ()  # images of the manifest this one is built FROM

    def platform_tags(self, platform: Platform) -> tuple[str, ...]:
        """The seed's per-platform tags: ``v1`` becomes ``v1-arm64``, ``v1-armv7``."""
        return tuple(f"{tag}-{platform.suffix}" for tag in self.tags)

    def platform_refs(self, platform: Platform) -> tuple[str, ...]:
        return tuple(f"{self.repository}:{tag}" for tag in self.platform_tags(platform))

    @property
    def refs(self) -> tuple[str, ...]:
        """The references the manifest lists are pushed as."""
        return tuple(f"{self.repository}:{tag}" for tag in self.tags)


@dataclass(frozen=True)
class Manifest:
    """The whole multiarch.yaml; ``path`` is absolute, contexts are resolved against it."""

    path: Path
    registry: str | None
    platforms: tuple[Platform, ...]
    images: tuple[Image, ...]

    def image(self, name: str) -> Image:
        return next(image for image in self.images if image.name == name)

    @property
    def state_dir(self) -> Path:
        """Where doit's state and build metadata live: beside the manifest."""
        return self.path.parent / ".multiarch"


def load_manifest(path: str | os.PathLike, shown: str | None = None) -> Manifest:
    """Read and validate a multiarch.yaml; every problem is one ManifestError line.

    ``shown`` is how errors name the file (default: ``path`` as given).
    """
    shown = shown or str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise ManifestError(shown, "", f"cannot read: {err.strerror}") from None
    except UnicodeDecodeError as err:
        raise ManifestError(shown, "", f"cannot read: not UTF-8 at byte {err.start}") from None
    try:
        document = yaml.safe_load(text)
    except RecursionError:
        raise ManifestError(shown, "", "invalid YAML: nested too deeply") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or "not YAML"
        raise ManifestError(shown, "", f"invalid YAML{where}: {problem}") from None
    return parse_manifest(document, Path(path).resolve(), shown)


def parse_manifest(document: Any, path: Path, shown: str) -> Manifest:
    """Turn the parsed YAML document into a Manifest (``shown`` names it in errors)."""
    fields = _Fields(shown)
    top = fields.mapping(document, "", TOP_KEYS)
    if "version" not in top:
        raise ManifestError(shown, "version", f"missing; write `version: {MANIFEST_VERSION}`")
    if type(top["version"]) is not int or top["version"] != MANIFEST_VERSION:
        raise ManifestError(
            shown, "version", f"unsupported version {top['version']!r}; allowed: {MANIFEST_VERSION}"
        )
    registry = fields.call("registry", validate_registry, fields.string(top, "registry", None))
    platforms = fields.platforms(top, "platforms", ())
    images_raw = fields.mapping(top.get("images"), "images", None)
    if not images_raw:
        raise ManifestError(shown, "images", "no images; add at least one under `images:`")
    images = tuple(
        _parse_image(fields, str(name), raw, path.parent, registry, platforms)
        for name, raw in images_raw.items()
    )
    images = _link_images(fields, images, {str(name): raw for name, raw in images_raw.items()})
    return Manifest(path=path, registry=registry, platforms=platforms, images=images)


def _link_images(fields, images: tuple[Image, ...], raw: dict) -> tuple[Image, ...]:
    """Fill ``depends_on``: the images each Dockerfile names, plus the explicit list.

    A reference counts when its repository is an image's and its tag one of that image's
    tags or per-platform tags; anything else is an outside base image.
    """
    by_ref = {}
    for image in images:
        for platform in image.platforms:
            for tag in (*image.tags, *image.platform_tags(platform)):
                by_ref[(image.repository, tag)] = image.name
    names = [image.name for image in images]
    linked = []
    for image in images:
        key = f"images.{image.name}.depends_on"
        explicit = fields.string_list(raw[image.name], key, [])
        for index, name in enumerate(explicit):
            if name not in names:
                close = difflib.get_close_matches(name, names, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise fields.fail(f"{key}[{index}]", f"no image {name!r} in this manifest{hint}")
        try:
            text = image.dockerfile.read_text(encoding="utf-8", errors="replace")
        except OSError as err:
            raise fields.fail(f"images.{image.name}.dockerfile", err.strerror) from None
        inferred = [
            by_ref[split_tag(ref)]
            for ref in referenced_images(text, dict(image.build_args))
            if split_tag(ref) in by_ref
        ]
        depends_on = tuple(dict.fromkeys([*inferred, *explicit]))
        linked.append(replace(image, depends_on=depends_on))
    cycle = find_cycle({image.name: image.depends_on for image in linked})
    if cycle:
        raise fields.fail("images", f"dependency cycle: {' -> '.join(cycle)}")
    return tuple(linked)


def _parse_image(fields, name, raw, base: Path, registry, default_platforms) -> Image:
    key = f"images.{name}"
    if not _IMAGE_NAME.fullmatch(name):
        raise fields.fail(
            key, "an image name is letters, digits, '_', '.' and '-', not starting with a symbol"
        )
    image = fields.mapping(raw, key, IMAGE_KEYS)

    context = base / fields.string(image, f"{key}.context", required=True)
    if not _exists(context.is_dir):
        raise fields.fail(f"{key}.context", f"no such directory: {context}")
    dockerfile = context / fields.string(image, f"{key}.dockerfile", "Dockerfile")
    if not _exists(dockerfile.is_file):
        raise fields.fail(f"{key}.dockerfile", f"no such file: {dockerfile}")

    repository = fields.call(
        f"{key}.repository",
        lambda value: repository_name(value, registry),
        fields.string(image, f"{key}.repository", name),
    )
    platforms = fields.platforms(image, f"{key}.platforms", default_platforms)
    if not platforms:
        raise ManifestError(
            fields.file,
            f"{key}.platforms",
            "no platforms; set `platforms:` here or at the top level",
        )
    tags = _parse_tags(fields, image, f"{key}.tags", platforms)

    build_args = fields.mapping(image.get("build_args"), f"{key}.build_args", None) or {}
    args = tuple(
        (str(arg), _scalar(fields, f"{key}.build_args.{arg}", value))
        for arg, value in build_args.items()
    )
    for arg, _ in args:
        if not _BUILD_ARG_NAME.fullmatch(arg):
            raise fields.fail(
                f"{key}.build_args.{arg}", "a build arg name is letters, digits and '_'"
            )
    target = fields.string(image, f"{key}.target", None)
    if target is not None and not _STAGE_NAME.fullmatch(target):
        raise ManifestError(
            fields.file,
            f"{key}.target",
            f"invalid stage name {target!r}: letters, digits, '_', '.', '-'",
        )
    pull = fields.boolean(image, f"{key}.pull", True)
    return Image(name, context, dockerfile, repository, tags, platforms, args, target, pull)


def _parse_tags(fields, image: dict, key: str, platforms) -> tuple[str, ...]:
    raw = fields.string_list(image, key, list(DEFAULT_TAGS))
    if not raw:
        raise ManifestError(fields.file, key, "no tags; leave `tags` out for [latest]")
    longest_suffix = max(len(platform.suffix) for platform in platforms)
    seen = set()
    for index, tag in enumerate(raw):
        where = f"{key}[{index}]"
        fields.call(where, validate_tag, tag)
        if tag in seen:
            raise ManifestError(fields.file, where, f"duplicate tag {tag!r}")
        if len(tag) + 1 + longest_suffix > _TAG_MAX:
            raise ManifestError(
                fields.file,
                where,
                f"tag {tag!r} is too long: with its per-platform suffix"
                f" it passes {_TAG_MAX} characters",
            )
        seen.add(tag)
    return tuple(raw)


def _scalar(fields, key: str, value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise fields.fail(key, f"expected a string, got {_kind(value)}")


def _kind(value) -> str:
    if value is None:
        return "nothing"
    return {
        dict: "a mapping",
        list: "a list",
        bool: "a boolean",
        int: "a number",
        float: "a number",
    }.get(type(value), f"a {type(value).__name__}")


class _Fields:
    """Typed reads from the YAML document, each failing as one ManifestError line."""

    def __init__(self, file: str):
        self.file = file

    def fail(self, key: str, message: str) -> ManifestError:
        return ManifestError(self.file, _printable(key), _printable(message))

    def mapping(self, value, key: str, allowed: frozenset | None) -> dict:
        if value is None and allowed is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a mapping, got {_kind(value)}")
        for name in value:
            if not isinstance(name, str):
                raise self.fail(key, f"keys must be strings, got {name!r}")
            if allowed is not None and name not in allowed:
                raise self.fail(_join(key, name), _unknown_key(name, allowed))
        return value

    def string(self, table: dict, key: str, default=None, required: bool = False):
        name = key.rsplit(".", 1)[-1]
        if name not in table:
            if required:
                raise self.fail(key, "missing")
            return default
        value = table[name]
        if not isinstance(value, str) or not value:
            got = _kind(value) if value != "" else "an empty one"
            raise self.fail(key, f"expected a non-empty string, got {got}")
        return value

    def string_list(self, table: dict, key: str, default: list) -> list[str]:
        name = key.rsplit(".", 1)[-1]
        value = table.get(name, default)
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise self.fail(key, f"expected a list of strings, got {_kind(value)}")
        for index, item in enumerate(value):
            if not isinstance(item, str):
                hint = "; quote it" if isinstance(item, (int, float)) else ""
                raise self.fail(f"{key}[{index}]", f"expected a string, got {_kind(item)}{hint}")
        return value

    def boolean(self, table: dict, key: str, default: bool) -> bool:
        value = table.get(key.rsplit(".", 1)[-1], default)
        if not isinstance(value, bool):
            raise self.fail(key, f"expected true or false, got {_kind(value)}")
        return value

    def platforms(self, table: dict, key: str, default: tuple) -> tuple[Platform, ...]:
        if key.rsplit(".", 1)[-1] not in table:
            return default
        return self.call(key, parse_platforms, self.string_list(table, key, []))

    def call(self, key: str, check: Callable, value):
        """Run a ValueError-raising check from tasks.platforms/reference under ``key``."""
        if value is None:
            return None
        try:
            return check(value)
        except ValueError as err:
            raise self.fail(key, str(err)) from None


def _exists(check: Callable[[], bool]) -> bool:
    """``Path.is_dir``/``is_file``, False where they raise (a name too long, no access)."""
    try:
        return check()
    except OSError:
        return False


def _printable(text: str) -> str:
    """Escape line breaks and other unprintables in user text, so an error stays one line."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _unknown_key(name: str, allowed: frozenset) -> str:
    message = f"unknown key {name!r}"
    close = difflib.get_close_matches(name, sorted(allowed), n=1)
    if close:
        message += f"; did you mean {close[0]!r}?"
    return f"{message} (allowed: {', '.join(sorted(allowed))})"


TOP_KEYS = frozenset({"version", "registry", "platforms", "images"})
IMAGE_KEYS = frozenset(
    {
        "context", "dockerfile", "repository", "tags", "platforms", "build_args", "target",
        "pull", "depends_on",
    }
)
