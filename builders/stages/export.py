"""Exporters: one `docker buildx build --output` per export, as `outputs:` asks."""

import hashlib
import shutil
from pathlib import Path

from ...tasks.model.manifest import Image
from ...tasks.model.methods import Output
from ...tasks.model.platforms import Platform
from ..engine.cli import run
from ..errors import DockerError
from .argv import export_argv
from .argv import output_flag as output_flag  # tasks.doit.exports shows it in a task's doc

# What buildx 0.13's docker exporter says when asked for a tar of several platforms; the
# oci exporter writes an index instead, and a load (no dest) works on the containerd store.
MULTI_PLATFORM_TAR_REFUSAL = "docker exporter does not support exporting manifest lists"


def one_per_platform(image: Image, output: Output) -> bool:
    """Whether ``output`` is exported once per platform rather than once for them all.

    A dest with ``{platform}``/``{arch}`` asks for it; a docker tar holds one platform only
    (buildx refuses a list); per-platform Dockerfiles and ``arch: build-arg`` give each
    platform its own build.
    """
    return (
        output.per_platform
        or (output.type == "docker" and output.dest is not None)
        or bool(image.method.dockerfiles)
        or image.method.arch == "build-arg"
    )


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def remove(path: Path) -> None:
    """Remove an export's file or directory tree, if there is one (also `doit clean`)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def export(image: Image, output: Output, platforms: list[Platform], dest: Path | None) -> dict:
    """Run one export; return where it went and, for a file, its sha256.

    A local rootfs is written into an emptied directory, so files the image no longer has
    do not linger; a failed export leaves no half-written file behind.

    Raises:
        DockerError: the build failed; a docker tar of several platforms says why in one line.
    """
    argv = export_argv(image, output, platforms, dest)
    label = ",".join(str(p) for p in platforms)
    if dest is not None:
        if output.type == "local":
            remove(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        run(argv, f"export {image.name} as {output.type}", prefix=f"[{image.name} {label}] ")
    except DockerError as err:
        if dest is not None:
            remove(dest)
        if MULTI_PLATFORM_TAR_REFUSAL in err.output:
            raise DockerError(f"{image.name}: outputs type docker: a docker tar holds one "
                              f"platform; put {{arch}} or {{platform}} in dest", argv,
                              err.output) from None
        raise
    digest = file_digest(dest) if dest is not None and dest.is_file() else None
    return {"type": output.type, "dest": None if dest is None else str(dest), "digest": digest,
            "platforms": [str(p) for p in platforms]}
