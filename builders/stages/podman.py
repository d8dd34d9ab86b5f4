"""Stages one and two with Podman: `podman build` one platform, `podman push` its tags.

The tasks, checks and lists are the Docker ones: what changes is the command line. Images are
built and pushed in Docker's format (`--format docker`, `--format v2s2`), so a list over them
reads the same in every client and matches one built with Docker. The list itself is assembled
over the registry's HTTP API from the digests the registry holds (builders.stages.manifest_list),
whichever engine pushed them.
"""

from functools import partial
from pathlib import Path

from ...tasks.model.manifest import Image
from ...tasks.model.platforms import Platform
from ...tasks.model.reference import locate
from ...tasks.model.routing import LOCAL, Node
from ...tasks.model.tags import content_tag
from ..engine import nodes
from ..engine.cli import run
from ..engine.facts import is_emulated
from ..engine.podman import arch, podman, tls_flags
from ..errors import DockerError
from ..registry.client import repository_of
from ..registry.retry import retry
from .argv import common_flags, iidfile_path

ENGINE = "podman"  # what a build's result says made it, for the push to follow


def pulled_hosts(image: Image, platform: Platform) -> list[str]:
    """The registries the build of ``platform`` pulls from (its FROM, COPY --from, ...)."""
    return sorted({locate(pull.reference)[0] for pull in image.pulls_for(platform)})


def build_argv(image: Image, platform: Platform, iidfile: Path, node: Node = LOCAL,
               registries=(), state_dir: Path | None = None) -> list[str]:
    """`podman build` for one platform: Docker's flags where Podman shares them, the image in
    Docker's format, and the TLS flags of the registries its bases come from."""
    argv = [*podman(node), "build"]
    if image.pull:
        argv.append("--pull=always")
    argv += ["--platform", str(platform), "-f", str(image.dockerfile_for(platform)),
             "--format", "docker"]
    argv += _tls_for(pulled_hosts(image, platform), registries, state_dir)
    argv += common_flags(image, [platform])
    argv += ["--iidfile", str(iidfile)]
    for ref in image.platform_refs(platform):
        argv += ["-t", ref]
    return [*argv, str(image.context)]


def _tls_for(hosts: list[str], registries, state_dir: Path | None) -> list[str]:
    """One command's TLS flags for every registry it pulls from: a podman command takes one
    `--tls-verify` and one `--cert-dir`, so an insecure host turns verification off for all
    (as Docker's loopback rule does), else the first private CA's folder is given."""
    flags = [tls_flags(host, registries, state_dir) for host in hosts]
    if ["--tls-verify=false"] in flags:
        return ["--tls-verify=false"]
    return next((found for found in flags if found), [])


def push_argv(image_id: str, ref: str, digestfile: Path, node: Node = LOCAL, registries=(),
              state_dir: Path | None = None) -> list[str]:
    """`podman push` of one local image, by ID, to one tag, in Docker's v2s2 format."""
    return [*podman(node), "push", "--format", "v2s2", "--digestfile", str(digestfile),
            *tls_flags(locate(ref)[0], registries, state_dir), image_id, f"docker://{ref}"]


def build(image: Image, platform: Platform, state_dir: Path, node: Node = LOCAL,
          registries=()) -> dict:
    """Build and tag one platform with podman; return its image ID for the push."""
    iidfile = iidfile_path(state_dir, image, platform)
    iidfile.parent.mkdir(parents=True, exist_ok=True)
    iidfile.unlink(missing_ok=True)
    argv = build_argv(image, platform, iidfile, node, registries, state_dir)
    prefix = f"[{image.name} {platform}] "
    try:
        run(argv, f"podman build {image.name} for {platform}", prefix=prefix,
            progress="building")
    except DockerError as err:
        if node.connection:
            raise nodes.explain_failure(err, node, f"the build of {image.name}",
                                        platform) from None
        raise
    return {"image_id": iidfile.read_text().strip(), "source": "build", "engine": ENGINE,
            "emulated": is_emulated(platform, arch(node)), "builder": node.name}


def exists(image_id: str, node: Node = LOCAL) -> bool:
    """Whether podman's storage on ``node`` still has ``image_id``."""
    try:
        run([*podman(node), "image", "exists", image_id], "podman image exists", echo=False)
    except DockerError:
        return False
    return True


def push(image: Image, platform: Platform, state_dir: Path, built: dict, node: Node = LOCAL,
         registries=()) -> dict:
    """Tag and push every per-platform tag and the content tag; return each tag's digest.

    An image gone from podman's storage since its build (`podman rmi`, a reset) is built
    again first.
    """
    prefix = f"[{image.name} {platform}] "
    image_id = built.get("image_id")
    if not image_id or built.get("engine") != ENGINE or not exists(image_id, node):
        image_id = build(image, platform, state_dir, node, registries)["image_id"]
    tags = list(image.platform_tags(platform))
    if built.get("input_digest"):
        tags.append(content_tag(built["input_digest"]))
    digestfile = state_dir / "iid" / f"{image.name}-{platform.suffix}.pushed"
    host = locate(image.repository)[0]
    digests = {}
    for tag in tags:
        ref = f"{image.repository}:{tag}"
        run([*podman(node), "tag", image_id, ref], f"podman tag {ref}", echo=False)
        argv = push_argv(image_id, ref, digestfile, node, registries, state_dir)
        retry(partial(_push_once, argv, ref, digestfile, prefix), f"push {ref}", host,
              image.retries, prefix)
        digests[ref] = _pushed_digest(image, tag, digestfile, registries)
    return {"digests": digests}


def _push_once(argv: list[str], ref: str, digestfile: Path, prefix: str) -> None:
    digestfile.unlink(missing_ok=True)
    run(argv, f"push {ref}", prefix=prefix, progress="pushing")


def _pushed_digest(image: Image, tag: str, digestfile: Path, registries) -> str:
    """The digest podman pushed ``tag`` as: its `--digestfile`, which a remote podman
    (`--connection`) leaves unwritten in 4.3; then the registry's own answer."""
    digest = digestfile.read_text().strip() if digestfile.exists() else ""
    if not digest.startswith("sha256:"):
        registry, path = repository_of(image, registries)
        digest = registry.head(path, tag) or ""
    if not digest.startswith("sha256:"):
        raise DockerError(f"push {image.repository}:{tag} reported no digest")
    return digest
