"""Stage one: build one platform of one image with the docker CLI (BuildKit lives there)."""

import re
from pathlib import Path

from ...tasks.model.engines import PODMAN
from ...tasks.model.manifest import Image
from ...tasks.model.platforms import Platform
from ...tasks.model.routing import LOCAL, Node, Routing
from ..engine import nodes
from ..engine.cli import run, say
from ..engine.client import cli_env
from ..engine.facts import engine_arch, is_emulated
from ..engine.family import family
from ..errors import DockerError
from ..registry import cache
from . import podman
from .argv import build_argv, iidfile_path

# A build killed while exporting (its doit run interrupted) can leave BuildKit (containerd
# store) a cache record whose snapshot is gone: every later build of the same inputs then fails
# so, until a build without the cache writes the record again.
_BROKEN_CACHE = re.compile(r"failed to commit \S+ .*snapshot \S+ does not exist")


def is_broken_cache(output: str) -> bool:
    return bool(_BROKEN_CACHE.search(output))


def build(image: Image, platform: Platform, state_dir: Path, node: Node = LOCAL) -> dict:
    """Build and tag one platform on ``node``; return the image ID for the push stage to check,
    and (as ``builder``) the engine it is on, so the push goes from there."""
    iidfile = iidfile_path(state_dir, image, platform)
    iidfile.parent.mkdir(parents=True, exist_ok=True)
    iidfile.unlink(missing_ok=True)
    argv, prefix = build_argv(image, platform, iidfile), f"[{image.name} {platform}] "
    try:
        _run_build(argv, f"build {image.name} for {platform}", prefix, cli_env(node))
    except DockerError as err:
        raise nodes.explain_failure(err, node, f"the build of {image.name}", platform) from None
    image_id = engine_image_id(iidfile.read_text().strip(), image.platform_refs(platform)[0],
                               cli_env(node))
    return {"image_id": image_id, "source": "build",
            "emulated": is_emulated(platform, engine_arch(node)), "builder": node.name}


def engine_image_id(iid: str, ref: str, env: dict) -> str:
    """The ID the engine knows the just-built image by, for the push to name it exactly.

    The iidfile is not always that ID: on the containerd store, a build without attestations
    writes its config digest, while the engine's ID is the manifest's digest. The tag was
    set by this build a moment ago, so it names the same image.
    """
    argv = ["docker", "image", "inspect", "--format", "{{.Id}}"]
    try:
        return run([*argv, iid], f"inspect {iid}", echo=False, env=env).strip()
    except DockerError:
        return run([*argv, ref], f"inspect {ref}", echo=False, env=env).strip()


def _run_build(argv: list[str], what: str, prefix: str, env: dict) -> None:
    """`docker build`, once more without the cache when BuildKit's cache is broken."""
    try:
        run(argv, what, prefix=prefix, progress="building", env=env)
    except DockerError as err:
        if not is_broken_cache(err.output):
            raise
        say(f"{prefix}BuildKit's cache of an interrupted build is broken; again with --no-cache")
        run([*argv[:-1], "--no-cache", argv[-1]], what, prefix=prefix, progress="building",
            env=env)


def build_or_reuse(image: Image, platform: Platform, state_dir: Path, input_digest: str,
                   use_registry_cache: bool, registries=(),
                   routing: Routing | None = None, engine: str | None = None) -> dict:
    """The build stage: reuse the registry's image for these exact inputs, else build on the
    platform's engine (``routing``, the `builders:` section), or locally when it is down;
    with Docker, or with Podman (``engine``, the manifest's `engine:`).

    ``input_digest`` (tasks.inputs) names the content tag. The engine is not an input: an
    image the registry has by content tag is reused whichever engine made it.
    """
    routing = routing or Routing()
    if use_registry_cache:
        try:
            reused = cache.reuse(image, platform, input_digest, registries)
        except DockerError as err:  # the cache is an optimisation; the build still works
            say(f"[{image.name} {platform}] registry cache skipped: {err.message}")
            reused = None
        if reused is not None:
            return {**reused, "input_digest": input_digest,
                    "builder": routing.node_for(platform).name}
    node = nodes.choose(routing, platform, prefix=f"[{image.name} {platform}] ")
    if family(engine) == PODMAN:
        built = podman.build(image, platform, state_dir, node, registries)
    else:
        built = build(image, platform, state_dir, node)
    return {**built, "input_digest": input_digest}
