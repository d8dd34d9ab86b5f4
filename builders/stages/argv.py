"""Every docker command line the stages run, from pure functions that tests check directly.

`docker build`, `docker buildx build` and an export share one skeleton, so a flag added for
one cannot drift from the others: [--builder] [--pull] --platform -f, the build args, target,
attestations and secrets, the stage's own file, the tags, what follows them, the context.
"""

from collections.abc import Sequence
from pathlib import Path

from ...tasks.model.manifest import Image
from ...tasks.model.methods import ARCH_NAMESPACES, Output
from ...tasks.model.platforms import Platform

ATTESTATION_FLAGS = {
    "false": ["--provenance=false", "--sbom=false"],
    "provenance": ["--provenance=true"],
    "sbom": ["--provenance=true", "--sbom=true"],
}
AUTO_BUILDER = "multiarch"


def common_flags(image: Image, platforms: list[Platform]) -> list[str]:
    """Build args, target and attestation flags, the same for `docker build` and buildx.

    With ``arch: build-arg`` the seed's oldest method gets its namespace (`ARCH=arm64v8`);
    that only works for one platform at a time.
    """
    flags = []
    for name, value in image.build_args:
        flags += ["--build-arg", f"{name}={value}"]
    if image.method.arch == "build-arg" and len(platforms) == 1:
        namespace = ARCH_NAMESPACES[str(platforms[0])]
        flags += ["--build-arg", f"{image.method.arch_arg}={namespace}"]
    if image.target:
        flags += ["--target", image.target]
    flags += ATTESTATION_FLAGS.get(image.method.attestations, [])
    for secret_id, path in image.method.secrets:
        flags += ["--secret", f"id={secret_id},src={path}"]
    return flags


def _build_command(command: list[str], image: Image, platforms: list[Platform], *,
                   builder: str | None = None, files: Sequence[str] = (),
                   refs: Sequence[str] = (), after: Sequence[str] = ()) -> list[str]:
    """The skeleton of the three build command lines.

    One platform is built from its own Dockerfile (`dockerfiles:`); several from the image's.
    ``files`` are where the command writes what it made (`--iidfile`), ``after`` what follows
    the tags (`--push`, `--output`).
    """
    dockerfile = image.dockerfile_for(platforms[0]) if len(platforms) == 1 else image.dockerfile
    argv = ["docker", *command]
    if builder:
        argv += ["--builder", builder]
    if image.pull:
        argv.append("--pull")
    argv += ["--platform", ",".join(str(p) for p in platforms), "-f", str(dockerfile)]
    argv += common_flags(image, platforms)
    argv += files
    for ref in refs:
        argv += ["-t", ref]
    return [*argv, *after, str(image.context)]


def iidfile_path(state_dir: Path, image: Image, platform: Platform) -> Path:
    """Where a build of one platform writes its image ID (`--iidfile`)."""
    return state_dir / "iid" / f"{image.name}-{platform.suffix}"


def build_argv(image: Image, platform: Platform, iidfile: Path) -> list[str]:
    """The `docker build` command line for one platform, as the seed article writes it.

    ``--pull`` makes every platform resolve its own base image instead of reusing the one
    the previous platform's build left in the cache.
    """
    return _build_command(["build"], image, [platform], files=["--iidfile", str(iidfile)],
                          refs=image.platform_refs(platform))


def buildx_argv(image: Image, metadata_file: Path, builder: str | None = None) -> list[str]:
    """`docker buildx build` for every platform of ``image`` at once, pushing the list."""
    return _build_command(["buildx", "build"], image, list(image.platforms), builder=builder,
                          files=["--metadata-file", str(metadata_file)], refs=image.refs,
                          after=["--push"] if image.method.pushes else [])


def output_flag(output: Output, dest: Path | None) -> str:
    """The ``--output`` value: a load into the engine when an image has no dest."""
    if output.type in ("image", "docker") and dest is None:
        return "type=docker"
    if output.type == "cacheonly":
        return "type=cacheonly"
    return f"type={output.type},dest={dest}"


def export_argv(image: Image, output: Output, platforms: list[Platform],
                dest: Path | None) -> list[str]:
    """The `docker buildx build` command line that exports ``platforms`` of ``image``.

    Loads and image files (docker, oci) are named: one platform gets its per-platform
    tags (``v1-arm64``), several get the list's tags.
    """
    if output.type == "registry":
        raise ValueError(f"{image.name}: registry is pushed by the build, not exported")
    refs = ()
    if output.type in ("image", "docker", "oci"):
        refs = image.platform_refs(platforms[0]) if len(platforms) == 1 else image.refs
    return _build_command(["buildx", "build"], image, list(platforms), refs=refs,
                          after=["--output", output_flag(output, dest)])


# The attestation flags as bake file entries (`attest`), one per flag of ATTESTATION_FLAGS.
BAKE_ATTESTATIONS = {
    "false": ["type=provenance,disabled=true", "type=sbom,disabled=true"],
    "provenance": ["type=provenance"],
    "sbom": ["type=provenance", "type=sbom"],
}


def bake_escape(text: str) -> str:
    """``text`` as a literal in a bake JSON file, where strings are HCL templates: `${` and
    `%{` would start an interpolation or a directive."""
    return text.replace("${", "$${").replace("%{", "%%{")


def bake_target(image: Image, platforms: list[Platform], tag_ref: str) -> dict:
    """One target of a bake file: what `docker build` of ``platforms`` would be given (the
    skeleton above, as bake spells it), pushed under ``tag_ref`` by BuildKit itself.

    Several platforms share one target only when they share a Dockerfile and need no
    per-platform `ARCH` argument (``batchable``).
    """
    args = dict(image.build_args)
    if image.method.arch == "build-arg" and len(platforms) == 1:
        args[image.method.arch_arg] = ARCH_NAMESPACES[str(platforms[0])]
    target = {
        "context": str(image.context),
        "dockerfile": str(image.dockerfile_for(platforms[0])),
        "platforms": [str(p) for p in platforms],
        "args": args,
        "tags": [tag_ref],
        "output": ["type=image,push=true"],
        "pull": image.pull,
    }
    if image.target:
        target["target"] = image.target
    if image.method.attestations in BAKE_ATTESTATIONS:
        target["attest"] = BAKE_ATTESTATIONS[image.method.attestations]
    if image.method.secrets:
        target["secret"] = [f"id={secret_id},src={path}"
                            for secret_id, path in image.method.secrets]
    return _escaped(target)


def _escaped(value):
    if isinstance(value, str):
        return bake_escape(value)
    if isinstance(value, list):
        return [_escaped(item) for item in value]
    if isinstance(value, dict):
        return {bake_escape(key): _escaped(item) for key, item in value.items()}
    return value


def target_argv(image: Image, platforms: list[Platform], tag_ref: str) -> list[str]:
    """The `docker buildx build --push` a bake target stands for, to be shown: what bake_target
    says, as the command line a user would type."""
    return _build_command(["buildx", "build"], image, platforms, refs=[tag_ref],
                          after=["--push"])


def bake_argv(bake_file: Path, metadata_file: Path) -> list[str]:
    """`docker buildx bake` of a generated file: every target of it in one BuildKit session."""
    return ["docker", "buildx", "bake", "-f", str(bake_file), "--metadata-file",
            str(metadata_file), "--progress", "plain"]


NODES_BUILDER = "multiarch-nodes"


def node_builder_argvs(nodes: Sequence[tuple[str, Sequence[Platform]]],
                       config: Path | None) -> list[list[str]]:
    """`docker buildx create`, then `--append` per further node: one docker-container
    BuildKit per engine of ``nodes`` (endpoint, the platforms it builds).

    Each node names its platforms: buildx sends a platform to a node that lists it, and every
    node's BuildKit lists the host's QEMU platforms by itself too, so an unnamed node would
    take them all.
    """
    argvs = []
    for index, (endpoint, platforms) in enumerate(nodes):
        argv = ["docker", "buildx", "create", *(["--append"] if index else []),
                "--name", NODES_BUILDER, "--node", f"{NODES_BUILDER}{index}",
                "--driver", "docker-container", "--driver-opt", "network=host",
                "--platform", ",".join(str(p) for p in platforms)]
        if config is not None:
            argv += ["--buildkitd-config", str(config)]
        argvs.append([*argv, endpoint])
    return argvs


def auto_builder_argv(config: Path | None) -> list[str]:
    """`docker buildx create` for ``builder: auto``.

    `network=host`: the engine's own builder reaches registries from the host's network, and so
    must this one, or a registry on localhost (a mirror, a self-hosted registry) is out of reach
    from inside its container. BuildKit reads buildkitd.toml only when the builder is created.
    """
    argv = ["docker", "buildx", "create", "--name", AUTO_BUILDER, "--driver", "docker-container",
            "--driver-opt", "network=host"]
    if config is not None:
        argv += ["--buildkitd-config", str(config)]
    return argv

