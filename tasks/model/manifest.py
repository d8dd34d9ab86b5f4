"""multiarch.yaml, parsed into frozen dataclasses with every default applied."""

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from .dockerfile import DockerfileError, Pull, parse_cached, pulls, untracked
from .engines import check_engine
from .errors import ManifestError
from .fields import Fields, exists, kind_of, suggest
from .methods import Method, parse_method
from .platforms import Platform, host_platform
from .reference import repository_name, split_tag, validate_registry, validate_tag
from .registries import RegistrySettings, parse_registries
from .routing import Routing, parse_builders
from .tags import platform_tag

MANIFEST_VERSION = 1
# Registry operations: attempts after the first (`retries:`), and the most one may ask for.
DEFAULT_RETRIES = 3
MAX_RETRIES = 10
DEFAULT_TAGS = ("latest",)
STATE_DIR = ".multiarch"  # beside the manifest: doit's state, records, caches
_IMAGE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_BUILD_ARG_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_STAGE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")


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
    base_images: tuple[str, ...] = ()  # images from outside the manifest it is built FROM
    method: Method = Method()
    retries: int = DEFAULT_RETRIES  # registry operations: attempts after the first
    # What each platform's build pulls (tasks.model.dockerfile), and what it cannot track.
    pulls: tuple[tuple[Platform, tuple[Pull, ...]], ...] = ()
    untracked: tuple[str, ...] = ()
    # Platforms routed to a node whose build, run here instead (the node down), pulls other
    # images: its `$BUILDPLATFORM` stages would run on this machine's platform.
    pulls_differ_here: tuple[Platform, ...] = ()

    def pulls_for(self, platform: Platform) -> tuple[Pull, ...]:
        """The images the build of ``platform`` pulls, each with the platform pulled for."""
        return dict(self.pulls).get(platform, ())

    def dockerfile_for(self, platform: Platform) -> Path:
        """The Dockerfile one platform is built from (`dockerfiles:` may name its own)."""
        return self.method.dockerfile(platform, self.dockerfile)

    def platform_tags(self, platform: Platform) -> tuple[str, ...]:
        """The seed's per-platform tags: ``v1`` becomes ``v1-arm64``, ``v1-armv7``."""
        return tuple(platform_tag(tag, platform) for tag in self.tags)

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
    cache: str = "registry"  # or "local": never reuse images by content tag
    builder: str | None = None  # a buildx builder name, or "auto"
    registries: tuple[RegistrySettings, ...] = ()
    retries: int = DEFAULT_RETRIES  # for registry checks that belong to no one image
    routing: Routing = Routing()  # `builders:`: the engine each platform builds on
    engine: str | None = None  # "docker" or "podman"; None: Docker, or Podman when no Docker

    @property
    def insecure_hosts(self) -> frozenset[str]:
        """Registries to speak plain HTTP (or unverified TLS) to, as the manifest declares."""
        return frozenset(r.host for r in self.registries if r.insecure)

    def ca_for(self, host: str) -> Path | None:
        return next((r.ca for r in self.registries if r.host == host), None)

    def image(self, name: str) -> Image:
        return next(image for image in self.images if image.name == name)

    def build_platform(self, platform: Platform) -> Platform:
        """The platform the build of ``platform`` runs on, which `$BUILDPLATFORM` names: a
        platform routed to its own node (`builders:`) builds natively there, any other on the
        local engine, this machine."""
        if self.routing.node_for(platform) != self.routing.default:
            return platform
        return host_platform()

    def locate(self, ref: str) -> tuple[Image, Platform | None] | None:
        """The image of the manifest ``ref`` names, by one of its tags, and the platform a
        per-platform tag fixes (``v1-arm64``); None for an image from outside."""
        return self._by_ref.get(split_tag(ref))

    @cached_property
    def _by_ref(self) -> dict[tuple[str, str], tuple[Image, Platform | None]]:
        return images_by_ref(self.images)

    @property
    def state_dir(self) -> Path:
        """Where doit's state and build metadata live: beside the manifest."""
        return self.path.parent / STATE_DIR


QUICK_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_manifest(path: str | os.PathLike, shown: str | None = None, *,
                  quick: bool = False) -> Manifest:
    """Read and validate a multiarch.yaml; every problem is one ManifestError line.

    ``shown`` is how errors name the file (default: ``path`` as given). ``quick`` parses the
    YAML with libyaml where PyYAML was built with it: the same document from a valid file,
    ~8 times faster, but its own words for an invalid one; the session uses it, and
    errors are reported from the pure-Python parser.
    """
    shown = shown or str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise ManifestError(shown, "", f"cannot read: {err.strerror}; `multiarch init` writes"
                                       " a first one") from None
    except OSError as err:
        raise ManifestError(shown, "", f"cannot read: {err.strerror}") from None
    except UnicodeDecodeError as err:
        raise ManifestError(shown, "", f"cannot read: not UTF-8 at byte {err.start}") from None
    try:
        document = yaml.load(text, Loader=QUICK_LOADER if quick else yaml.SafeLoader)
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
    fields = Fields(shown)
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
    defaults = {name: top[name] for name in METHOD_DEFAULTS if name in top}
    retries = fields.integer(top, "retries", DEFAULT_RETRIES, 0, MAX_RETRIES)
    images = tuple(
        _parse_image(fields, str(name), raw, path.parent, registry, platforms, defaults, retries)
        for name, raw in images_raw.items()
    )
    cache = fields.string(top, "cache", "registry")
    if cache not in CACHE_MODES:
        raise fields.fail("cache", f"unknown cache {cache!r}; allowed: {', '.join(CACHE_MODES)}")
    builder = fields.string(top, "builder", None)
    registries = parse_registries(fields, top.get("registries"), path.parent)
    built = tuple(dict.fromkeys(p for image in images for p in image.platforms))
    routing = parse_builders(fields, top.get("builders"), built, path.parent,
                             path.parent / STATE_DIR)
    engine = fields.string(top, "engine", None)
    manifest = Manifest(path=path, registry=registry, platforms=platforms, images=images,
                        cache=cache, registries=registries, builder=builder, retries=retries,
                        routing=routing, engine=engine)
    check_engine(fields, manifest, top)
    raw = {str(name): raw for name, raw in images_raw.items()}
    return replace(manifest, images=_link_images(fields, manifest, raw))


def images_by_ref(images) -> dict[tuple[str, str], tuple[Image, Platform | None]]:
    """(repository, tag) → the image, and the platform a per-platform tag fixes."""
    by_ref: dict[tuple[str, str], tuple[Image, Platform | None]] = {}
    for image in images:
        for tag in image.tags:
            by_ref[(image.repository, tag)] = (image, None)
        for platform in image.platforms:
            for tag in image.platform_tags(platform):
                by_ref.setdefault((image.repository, tag), (image, platform))
    return by_ref


def _link_images(fields, manifest: Manifest, raw: dict) -> tuple[Image, ...]:
    """Fill what each build pulls (read as BuildKit reads the Dockerfile, per platform) and
    ``depends_on``: the images of the manifest it pulls, plus the explicit list.

    A reference counts when its repository is an image's and its tag one of that image's
    tags or per-platform tags; anything else is an outside base image.
    """
    images, folder = manifest.images, manifest.path.parent
    by_ref = images_by_ref(images)
    names = [image.name for image in images]
    linked, parsed_files = [], {}
    for image in images:
        key = f"images.{image.name}.depends_on"
        explicit = fields.string_list(raw[image.name], key, [])
        for index, name in enumerate(explicit):
            if name not in names:
                raise fields.fail(f"{key}[{index}]",
                                  f"no image {name!r} in this manifest{suggest(name, names)}")
        per_platform, notes, differ = [], {}, []
        for platform in image.platforms:
            build_platform = manifest.build_platform(platform)
            found, cannot = _read_pulls(fields, image, platform, build_platform, folder,
                                        parsed_files)
            per_platform.append((platform, found))
            notes.update(dict.fromkeys(cannot))
            if build_platform != host_platform() and found != _read_pulls(
                    fields, image, platform, host_platform(), folder, parsed_files)[0]:
                differ.append(platform)
        refs = dict.fromkeys(pull.reference for _, found in per_platform for pull in found)
        inferred = [by_ref[split_tag(ref)][0].name for ref in refs if split_tag(ref) in by_ref]
        outside = [ref for ref in refs if split_tag(ref) not in by_ref]
        depends_on = tuple(dict.fromkeys([*inferred, *explicit]))
        linked.append(replace(image, depends_on=depends_on, base_images=tuple(outside),
                              pulls=tuple(per_platform), untracked=tuple(notes),
                              pulls_differ_here=tuple(differ)))
    cycle = find_cycle({image.name: image.depends_on for image in linked})
    if cycle:
        raise fields.fail("images", f"dependency cycle: {' -> '.join(cycle)}")
    return tuple(linked)


def _read_pulls(fields, image: Image, platform: Platform, build_platform: Platform,
                folder: Path, parsed_files: dict) -> tuple[tuple[Pull, ...], tuple[str, ...]]:
    """What the build of ``platform`` pulls and what it cannot track; a Dockerfile BuildKit
    would refuse is one line naming the file, the image and the Dockerfile's line.
    ``parsed_files``: each Dockerfile read and parsed once per load, whatever uses it."""
    dockerfile = image.dockerfile_for(platform)
    key = f"images.{image.name}.dockerfile"
    args = dict(image.build_args)
    try:
        if dockerfile not in parsed_files:
            try:
                text = dockerfile.read_text(encoding="utf-8", errors="replace")
            except OSError as err:
                raise fields.fail(key, err.strerror) from None
            parsed_files[dockerfile] = parse_cached(text, folder / STATE_DIR / "dockerfiles")
        parsed = parsed_files[dockerfile]
        return (pulls(parsed, args, image.target, platform, build_platform),
                untracked(parsed, args, image.target, platform, build_platform))
    except DockerfileError as err:
        try:
            shown = dockerfile.relative_to(folder)
        except ValueError:
            shown = dockerfile
        raise fields.fail(key, f"{shown} {err}") from None


def _parse_image(fields, name, raw, base: Path, registry, default_platforms, defaults,
                 default_retries: int = DEFAULT_RETRIES) -> Image:
    key = f"images.{name}"
    if not _IMAGE_NAME.fullmatch(name):
        raise fields.fail(
            key, "an image name is letters, digits, '_', '.' and '-', not starting with a symbol"
        )
    image = fields.mapping(raw, key, IMAGE_KEYS)

    context = base / fields.string(image, f"{key}.context", required=True)
    if not exists(context.is_dir):
        raise fields.fail(f"{key}.context", f"no such directory: {context}")
    dockerfile = context / fields.string(image, f"{key}.dockerfile", "Dockerfile")
    if not exists(dockerfile.is_file):
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
    method = parse_method(fields, image, key, defaults, context, platforms, base)
    retries = fields.integer(image, f"{key}.retries", default_retries, 0, MAX_RETRIES)
    return Image(name, context, dockerfile, repository, tags, platforms, args, target, pull,
                 method=method, retries=retries)


def _parse_tags(fields, image: dict, key: str, platforms) -> tuple[str, ...]:
    raw = fields.string_list(image, key, list(DEFAULT_TAGS))
    if not raw:
        raise ManifestError(fields.file, key, "no tags; leave `tags` out for [latest]")
    seen = set()
    for index, tag in enumerate(raw):
        where = f"{key}[{index}]"
        fields.call(where, validate_tag, tag)
        if tag in seen:
            raise ManifestError(fields.file, where, f"duplicate tag {tag!r}")
        seen.add(tag)
    return tuple(raw)


def _scalar(fields: Fields, key: str, value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise fields.fail(key, f"expected a string, got {kind_of(value)}")


METHOD_DEFAULTS = ("strategy", "fallback", "attestations")
TOP_KEYS = frozenset(
    {"version", "registry", "platforms", "images", "cache", "builder", "builders", "registries",
     "retries", "engine", *METHOD_DEFAULTS}
)
CACHE_MODES = ("registry", "local")
IMAGE_KEYS = frozenset(
    {
        "context", "dockerfile", "repository", "tags", "platforms", "build_args", "target",
        "pull", "depends_on", "strategy", "arch", "arch_arg", "dockerfiles", "outputs",
        "attestations", "fallback", "secrets", "retries",
    }
)


def find_cycle(edges: Mapping[str, tuple[str, ...]]) -> list[str] | None:
    """A dependency cycle as a path (`a, b, a`), or None; depth-first, deterministic order."""
    state: dict[str, str] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for child in edges.get(node, ()):
            if state.get(child) == "open":
                return path[path.index(child):] + [child]
            if child not in state and (cycle := visit(child)):
                return cycle
        state[node] = "done"
        path.pop()
        return None

    for node in edges:
        if node not in state and (cycle := visit(node)):
            return cycle
    return None
