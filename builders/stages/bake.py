"""Many builds in one BuildKit session: one `docker buildx bake` of a file made for them.

A `docker build` per platform pays, one after another, for a CLI start, a session, an export
and a push through the engine; bake hands BuildKit every build at once, as `docker buildx
bake --push` does. A target is one image's stale platforms, pushed by BuildKit under a tag
named after their input digests (the docker driver cannot push by digest alone). Each
platform's own image is then put under its content tag (builders.registry.cache), from where
the push stage tags it like any image the registry already had.
"""

import hashlib
import json
import re
import shlex
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ...tasks.model.files import write_atomic
from ...tasks.model.manifest import Image
from ...tasks.model.platforms import Platform, from_oci
from ...tasks.model.routing import Node
from ...tasks.model.tags import content_tag
from ..engine.cli import run, say
from ..engine.client import cli_env
from ..engine.facts import engine_arch, is_emulated
from ..errors import DockerError
from ..registry.client import Registry, repository_of
from .argv import bake_argv, bake_target, target_argv

PREFIX = "[bake] "
# Targets per bake: BuildKit saves a build record per target once it pushed, and with ~50 or
# more targets in one session that can pass its 20 s timeout and fail the bake
# (`DeadlineExceeded`, moby/buildkit#4327). More are baked in sessions of this many, in turn.
MAX_TARGETS = 16
_DEADLINE = "DeadlineExceeded"  # how that timeout, and BuildKit's others, fail the bake
_TARGET_NAME = re.compile(r"[^A-Za-z0-9_-]")
# BuildKit's plain progress: a Dockerfile step's header ("#11 [web linux/arm64 2/3] COPY ..."),
# and a step's end ("#11 DONE 0.4s").
_STEP = re.compile(r"^#(\d+) \[(\S+) (\S+/\S+) \d+/\d+\] ", re.M)
_DONE = re.compile(r"^#(\d+) DONE (\d+(?:\.\d+)?)s$", re.M)
# Any step's header: "#3 [web linux/amd64 internal] load metadata ...", "#2 [web internal] ...".
_HEADER = re.compile(r"#(\d+) \[([A-Za-z0-9_-]+)(?: ([a-z0-9]+/[a-z0-9/]+))?[ \]]")
_VERTEX = re.compile(r"#(\d+) ")
_WORKERS = 8
_INDEXES = ("application/vnd.oci.image.index.v1+json",
            "application/vnd.docker.distribution.manifest.list.v2+json")
# How BuildKit ties an attestation manifest to the image it describes, in an index.
_REFERENCE_TYPE, _REFERENCE_DIGEST = "vnd.docker.reference.type", "vnd.docker.reference.digest"


@dataclass(frozen=True)
class Target:
    """Platforms of one image that one bake target builds, with their input digests."""

    image: Image
    platforms: tuple[Platform, ...]
    input_digests: tuple[str, ...]

    @property
    def tag(self) -> str:
        """Where BuildKit pushes the target: a content tag of all its platforms' inputs."""
        joined = "+".join(self.input_digests)
        return content_tag(hashlib.sha256(joined.encode()).hexdigest())


def targets(image: Image, platforms: Sequence[Platform],
            input_digests: Sequence[str]) -> list[Target]:
    """``image``'s builds as bake targets: platforms share one where one `docker buildx build
    --platform a,b` could build them (the same Dockerfile, no per-platform `ARCH`)."""
    groups: dict[object, list[tuple[Platform, str]]] = {}
    for platform, digest in zip(platforms, input_digests, strict=True):
        alone = platform if image.method.arch == "build-arg" else None
        groups.setdefault((image.dockerfile_for(platform), alone), []).append((platform, digest))
    return [Target(image, tuple(p for p, _ in group), tuple(d for _, d in group))
            for group in groups.values()]


def target_names(batch: Sequence[Target]) -> list[str]:
    """Each target's name in the bake file, which BuildKit's progress lines start with: the
    image's name (in the letters bake allows), with its platforms when it has several targets,
    and a number when two would still be the same."""
    images = Counter(target.image.name for target in batch)
    names, seen = [], Counter()
    for target in batch:
        name = _TARGET_NAME.sub("_", target.image.name)
        if images[target.image.name] > 1:
            name += "-" + "-".join(p.suffix for p in target.platforms)
        seen[name] += 1
        names.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return names


def bake_file(batch: Sequence[Target]) -> dict:
    """The bake file (JSON) of ``batch``: one group of every target."""
    names = target_names(batch)
    return {"group": {"default": {"targets": names}},
            "target": {name: bake_target(t.image, list(t.platforms),
                                         f"{t.image.repository}:{t.tag}")
                       for name, t in zip(names, batch, strict=True)}}


def bake(batch: Sequence[Target], state_dir: Path, node: Node, registries=(),
         arch: str | None = None) -> dict[tuple[str, Platform], dict]:
    """Build and push ``batch`` on ``node`` (whose architecture is ``arch``, asked of it if not
    given), in bakes of up to MAX_TARGETS targets; return what the build stage would for each
    (image name, platform) that is now under its content tag."""
    arch = arch or engine_arch(node)
    results = {}
    for start in range(0, len(batch), MAX_TARGETS):
        results.update(bake_once(batch[start:start + MAX_TARGETS], state_dir, node, registries,
                                 arch))
    return results


def bake_once(batch: Sequence[Target], state_dir: Path, node: Node, registries,
              arch: str, again: bool = True) -> dict[tuple[str, Platform], dict]:
    """One bake of ``batch`` in one BuildKit session, then each platform's content tag.

    A failed bake is not raised: the targets BuildKit pushed before it stopped are kept, and
    the platforms missing from the answer are for the caller to build one by one, where the
    failure is reported as that platform's own. A bake that BuildKit timed out
    (`DeadlineExceeded`) bakes what it did not push once more first (``again``).
    """
    folder = state_dir / "bake"
    folder.mkdir(parents=True, exist_ok=True)
    bake_path, metadata = folder / "bake.json", folder / "metadata.json"
    write_atomic(bake_path, json.dumps(bake_file(batch), indent=2))
    metadata.unlink(missing_ok=True)
    names = target_names(batch)
    builds = sum(len(t.platforms) for t in batch)
    images = len({target.image.name for target in batch})
    say(f"{PREFIX}{builds} builds of {images} images in one BuildKit session")
    for name, target in zip(names, batch, strict=True):  # what each target is, as typed
        argv = target_argv(target.image, list(target.platforms), f"{target.image.repository}:"
                           f"{target.tag}")
        say(f"{PREFIX}{name}: {shlex.join(argv)}")
    labels = LinePrefixes({name: t.image.name for name, t in zip(names, batch, strict=True)})
    timed_out = False
    try:
        output = run(bake_argv(bake_path, metadata), "bake", prefix=PREFIX,
                     progress="building", env=cli_env(node), line_prefix=labels)
    except DockerError as err:
        output = err.output
        timed_out = again and _DEADLINE in output
        say(f"{PREFIX}{err.message}; what it did not push is "
            + ("baked once more" if timed_out else "built one platform at a time"))
    seconds = step_seconds(output)
    with ThreadPoolExecutor(min(_WORKERS, len(batch))) as pool:
        tagged = list(pool.map(lambda t: _content_tags(t, registries), batch))
    results = {}
    for name, target, digests in zip(names, batch, tagged, strict=True):
        for platform, input_digest in zip(target.platforms, target.input_digests, strict=True):
            if platform in digests:
                results[(target.image.name, platform)] = {
                    "image_id": digests[platform], "source": "bake",
                    "input_digest": input_digest, "builder": node.name,
                    "emulated": is_emulated(platform, arch),
                    "build_seconds": round(seconds.get((name, str(platform)), 0.0), 3)}
    if timed_out:
        missing = [t for t, digests in zip(batch, tagged, strict=True)
                   if len(digests) < len(t.platforms)]
        if missing:
            results.update(bake_once(missing, state_dir, node, registries, arch, again=False))
    return results


class LinePrefixes:
    """The prefix of each line of bake's progress: `[web linux/arm64] ` for the lines of a
    step of that build, as a `docker build` of it would be prefixed; `[bake] ` for the rest."""

    def __init__(self, images: dict[str, str]):
        self.images = images  # target name → image name
        self.owners: dict[str, str] = {}

    def __call__(self, line: str) -> str:
        header = _HEADER.match(line)
        if header and header.group(2) in self.images:
            image, platform = self.images[header.group(2)], header.group(3)
            self.owners[header.group(1)] = f"[{image} {platform}] " if platform else f"[{image}] "
        vertex = _VERTEX.match(line)
        return self.owners.get(vertex.group(1), PREFIX) if vertex else PREFIX


def step_seconds(output: str) -> dict[tuple[str, str], float]:
    """The seconds each (target name, platform) spent in its Dockerfile steps, from bake's
    plain progress; a step BuildKit shares between builds counts for the first to show it."""
    owners: dict[str, tuple[str, str]] = {}
    for found in _STEP.finditer(output):
        owners.setdefault(found.group(1), (found.group(2), found.group(3)))
    seconds: dict[tuple[str, str], float] = {}
    for found in _DONE.finditer(output):
        owner = owners.get(found.group(1))
        if owner is not None:
            seconds[owner] = seconds.get(owner, 0.0) + float(found.group(2))
    return seconds


def _content_tags(target: Target, registries=()) -> dict[Platform, str]:
    """Put each platform's image (with its attestation, if BuildKit made one) under its
    content tag; return the digests put there. Nothing for a target that was not pushed."""
    registry, path = repository_of(target.image, registries)
    try:
        pushed = registry.get(path, target.tag)
        if pushed is None:
            return {}
        body, media_type, _ = pushed
        if media_type not in _INDEXES:
            platform = target.platforms[0]
            if len(target.platforms) > 1 or image_platform(registry, path, body) != platform:
                return {}
            return {platform: registry.put(path, content_tag(target.input_digests[0]), body,
                                           media_type)}
        index = json.loads(body)
        found = {}
        for platform, digest in zip(target.platforms, target.input_digests, strict=True):
            own = platform_index(index, platform, media_type)
            if own is not None:
                found[platform] = _put_own(registry, path, content_tag(digest), own)
        return found
    except DockerError as err:
        say(f"{PREFIX}{target.image.repository}:{target.tag}: {err.message}")
        return {}


def image_platform(registry: Registry, path: str, body: bytes) -> Platform | None:
    """The platform an image manifest's own config records; None for anything else.

    A lone manifest under a target's tag is the whole push of one platform without
    attestations, or what a push cut short left there: with the containerd image store the
    engine pushes the image again after BuildKit, each manifest under the tag and the index
    last, so a failed index PUT leaves the tag on whichever platform's image (or attestation)
    went before it. Only the config tells which.
    """
    try:
        config = (json.loads(body).get("config") or {}).get("digest")
        found = json.loads(registry.blob(path, config) or "null") if config else None
    except (ValueError, AttributeError):
        return None
    return from_oci(found) if isinstance(found, dict) else None


def platform_index(index: dict, platform: Platform, media_type: str) -> dict | None:
    """``platform``'s part of a multi-platform index: its image and the attestation that
    points at it (what a one-platform build would have pushed), or None if it is not there."""
    entries = index.get("manifests") or []
    images = [e for e in entries if e.get("platform", {}).get("os", "unknown") != "unknown"
              and from_oci(e["platform"]) == platform]
    if len(images) != 1:
        return None
    image = images[0]
    attestations = [e for e in entries
                    if (e.get("annotations") or {}).get(_REFERENCE_TYPE) == "attestation-manifest"
                    and e["annotations"].get(_REFERENCE_DIGEST) == image["digest"]]
    return {"schemaVersion": 2, "mediaType": media_type, "manifests": [image, *attestations]}


def _put_own(registry: Registry, path: str, tag: str, own: dict) -> str:
    """Tag ``own`` (platform_index's answer): an index when it holds an attestation, else
    the image's manifest itself, as the registry serves it."""
    if len(own["manifests"]) > 1:
        body = json.dumps(own, separators=(",", ":")).encode()
        return registry.put(path, tag, body, own["mediaType"])
    image = own["manifests"][0]
    found = registry.get(path, image["digest"])
    if found is None:
        raise DockerError(f"{image['digest']} is not in {registry.host}/{path}")
    return registry.put(path, tag, found[0], found[1] or image["mediaType"])
