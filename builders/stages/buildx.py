"""The buildx strategy: one `docker buildx build --platform a,b --push` per image."""

import json
import os
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import tomli_w

from ...tasks.model.files import write_atomic
from ...tasks.model.manifest import Image
from ...tasks.model.platforms import Platform, from_oci
from ...tasks.model.reference import locate
from ...tasks.model.registries import RegistrySettings, buildkitd_config
from ...tasks.model.routing import Node, Routing
from ..engine import nodes
from ..engine.cli import run, say
from ..engine.contexts import tls_context
from ..engine.facts import uses_containerd_store
from ..errors import DockerError
from ..registry.client import repository_of
from ..registry.retry import is_retriable, retry
from . import build, manifest_list, push
from .argv import AUTO_BUILDER, NODES_BUILDER, auto_builder_argv, buildx_argv, node_builder_argvs

# What buildx says when its builder cannot export several platforms at once: the docker
# driver without the containerd image store (buildx 0.13 words it the first way, the seed's
# older buildx the second).
MULTI_PLATFORM_REFUSALS = (
    "Multi-platform build is not supported for the docker driver",
    "multiple platforms feature is currently not supported for docker driver",
)
ADVICE = (
    "enable the containerd image store in daemon.json "
    '("features": {"containerd-snapshotter": true}), or set builder: auto, '
    "or fallback: manifest"
)


def resolve_builder(builder: str | None, state_dir: Path) -> str | None:
    """``builder: auto``: the engine's own builder when it can build several platforms (the
    containerd image store), else a `docker-container` builder made once, with the generated
    buildkitd.toml when there is one. Any other name is used as given.

    The builder is remade when what it was made from changes: buildkitd.toml, the create
    command, or the engine (a builder stays with the engine it was created on).
    """
    if builder != "auto":
        return builder
    store = run(["docker", "info", "--format", "{{json .DriverStatus}}"], "docker info",
                echo=False)
    if uses_containerd_store(json.loads(store)):
        return None
    config = state_dir / "buildkitd.toml"
    argv = auto_builder_argv(config if config.exists() else None)
    engine = [os.environ.get(name, "") for name in ("DOCKER_HOST", "DOCKER_CONTEXT")]
    wanted = json.dumps({"engine": engine, "argv": argv,
                         "buildkitd.toml": config.read_text() if config.exists() else ""})
    return _made(AUTO_BUILDER, [argv], wanted, state_dir / "builder-config")


def _made(name: str, argvs: list[list[str]], wanted: str, made_from: Path) -> str:
    """The builder ``name``, created by ``argvs`` unless it exists and ``made_from`` says it
    was made from ``wanted``; else removed and created again."""
    try:
        run(["docker", "buildx", "inspect", name], "buildx inspect", echo=False)
        exists = True
    except DockerError:
        exists = False
    if exists and made_from.exists() and made_from.read_text() == wanted:
        return name
    if exists:
        run(["docker", "buildx", "rm", name], f"remove the {name} builder")
    for argv in argvs:
        run(argv, f"create the {name} builder")
    write_atomic(made_from, wanted)
    return name


def endpoint(node: Node) -> str:
    """What `docker buildx create` is given for ``node``: its DOCKER_HOST or context (for a
    node with `tls:`, the context made from it: buildx reads no TLS for a bare tcp:// host);
    for the environment's engine, the environment's (or the default context)."""
    if node.tls is not None:
        return tls_context(node)
    return (node.docker_host or node.context or os.environ.get("DOCKER_HOST")
            or os.environ.get("DOCKER_CONTEXT") or "default")


def node_builder(routing: Routing, platforms: Sequence[Platform], state_dir: Path,
                 prefix: str = "") -> tuple[str, dict[str, str]]:
    """The buildx builder `builders:` makes: a docker-container BuildKit on each routed
    engine for its platforms, and one on the default engine for the rest; returns its name
    and which engine builds each platform.

    A routed engine that does not answer falls back as a manifest-strategy build does (its
    platforms go to the default engine's node, said so), or stops the run with `emulate:
    false`. The builder is made again only when its nodes or buildkitd.toml change.
    """
    placed: dict[Node, list[Platform]] = {}
    for platform in platforms:
        placed.setdefault(nodes.choose(routing, platform, prefix), []).append(platform)
    ordered = sorted(placed.items(), key=lambda item: item[0] != routing.default)
    config = state_dir / "buildkitd.toml"
    argvs = node_builder_argvs([(endpoint(node), found) for node, found in ordered],
                               config if config.exists() else None)
    wanted = json.dumps({"argvs": argvs,
                         "buildkitd.toml": config.read_text() if config.exists() else ""})
    name = _made(NODES_BUILDER, argvs, wanted, state_dir / "nodes-builder-config")
    return name, {str(platform): node.name for node, found in placed.items()
                  for platform in found}


def refuses_multi_platform(output: str) -> bool:
    return any(refusal in output for refusal in MULTI_PLATFORM_REFUSALS)


def build_and_push(image: Image, state_dir: Path, builder: str | None = None,
                   fallback=None, routing: Routing | None = None,
                   platforms: Sequence[Platform] = (), registries=()) -> dict:
    """Run the one buildx build; return each list's digest as the registry got it, and each
    platform's image in it (``children``) and the engine that built it (``builders``).

    With `builders:` routes (``routing``) and no builder named, the build runs on the
    builder node_builder makes for every buildx image's ``platforms``. A builder that refuses
    several platforms is reported in one line with what to do, or, given ``fallback`` (a
    callable running the manifest strategy), handed over to it.
    """
    metadata_file = state_dir / "buildx" / f"{image.name}.json"
    metadata_file.parent.mkdir(parents=True, exist_ok=True)
    metadata_file.unlink(missing_ok=True)
    where: dict[str, str] = {}
    if routing is not None and routing.routes and builder in (None, "auto"):
        builder_name, where = node_builder(routing, platforms or image.platforms, state_dir,
                                           f"[{image.name}] ")
    else:
        builder_name = resolve_builder(builder, state_dir)
    argv = buildx_argv(image, metadata_file, builder_name)
    try:
        _run_with_retries(argv, image)
    except DockerError as err:
        if not refuses_multi_platform(err.output):
            raise
        if fallback is None:
            raise DockerError(
                f"{image.name}: the builder {builder or 'default'} (docker driver) cannot build "
                f"several platforms at once: {ADVICE}", argv) from None
        say(f"[{image.name}] the builder cannot build several platforms; "
              "falling back to the manifest strategy")
        return fallback()
    metadata = json.loads(metadata_file.read_text())
    digest = metadata.get("containerimage.digest", "")
    return {"lists": {ref: digest for ref in image.refs}, "strategy": "buildx",
            "children": pushed_children(image, registries),
            "builders": {str(platform): where.get(str(platform), builder_name or "default")
                         for platform in image.platforms}}


def pushed_children(image: Image, registries=()) -> dict[str, str]:
    """platform → `repository@digest` of each image in the list buildx pushed, as the
    registry has it (attestations left out); {} when the list is not there to read."""
    if not image.method.pushes:
        return {}
    registry, path = repository_of(image, registries)
    found = registry.get(path, image.tags[0])
    if found is None:
        return {}
    children = {}
    for entry in json.loads(found[0]).get("manifests", []):
        platform = from_oci(entry.get("platform") or {})
        if platform is not None:
            children[str(platform)] = f"{image.repository}@{entry['digest']}"
    return children


def _run_with_retries(argv: list[str], image: Image) -> None:
    """A registry hiccup during the push re-runs the build, which the cache makes a re-push."""
    retry(partial(run, argv, f"buildx build {image.name}", prefix=f"[{image.name}] ",
                  progress="building"),
          f"buildx build --push {image.name}", locate(image.repository)[0], image.retries,
          f"[{image.name}] ", push_failed_retriably)


def push_failed_retriably(text: str) -> bool:
    """Judge only buildx's ERROR lines: a build step's own output may say "EOF" or "timeout"
    (a heredoc, a test), and a multi-platform refusal is handled by the caller."""
    errors = "\n".join(line for line in text.splitlines() if "ERROR" in line or "error:" in line)
    return not refuses_multi_platform(text) and is_retriable(errors)


def manifest_fallback(image: Image, state_dir: Path, input_digest: Callable[[Platform], str],
                      registries: tuple[RegistrySettings, ...] = ()) -> dict:
    """The manifest strategy inline: build and push each platform, then publish the lists.

    ``input_digest`` gives each platform's (tasks.inputs), asked only here, when the
    fallback really runs.
    """
    for platform in image.platforms:
        built = build.build_or_reuse(image, platform, state_dir, input_digest(platform), False)
        push.push(image, platform, state_dir, built)
    return {**manifest_list.publish(image, registries), "strategy": "manifest (fallback)"}


def write_buildkitd_toml(registries: tuple[RegistrySettings, ...], path: Path) -> dict:
    """Write buildkitd.toml (the `buildkitd` task's action); return what was written."""
    text = tomli_w.dumps(buildkitd_config(registries))
    write_atomic(path, text)
    say(f"wrote {path}")
    return {"buildkitd_toml": text}
