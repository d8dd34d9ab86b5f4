"""Task names, made and read back in one place: `build:demo:linux/arm64`, `manifest:demo`, ...

A task_* function of dodo.py names its group (`build`); the tasks it yields are named by
what follows the first ':' (`demo:linux/arm64`), which ``subtask`` gives.
"""

from ..model.manifest import Image
from ..model.platforms import Platform

BUILD, PUSH, MANIFEST, EXPORT = "build", "push", "manifest", "export"
IMAGE = "image"  # the kind of `build:<image>`: the whole chain of one image


def task(group: str, image: str, *rest: object) -> str:
    """``group:image[:rest...]``: `task("push", "demo", platform)` → `push:demo:linux/arm64`."""
    return ":".join((group, image, *map(str, rest)))


def subtask(name: str) -> str:
    """A task's name within its group: `build:demo:linux/arm64` → `demo:linux/arm64`."""
    return name.partition(":")[2]


def build(image: str, platform: Platform | str | None = None) -> str:
    """`build:<image>:<platform>`, one platform's build; `build:<image>` without a platform."""
    return task(BUILD, image) if platform is None else task(BUILD, image, platform)


def push(image: str, platform: Platform | str) -> str:
    return task(PUSH, image, platform)


def manifest(image: str) -> str:
    return task(MANIFEST, image)


def published(image: Image) -> str:
    """The task after which ``image``'s lists are in the registry (what dependents wait for):
    the one buildx build, or the manifest strategy's list."""
    return build(image.name) if image.method.strategy == "buildx" else manifest(image.name)


def export(image: str, output_type: str, number: int | None = None,
           platform: Platform | None = None) -> str:
    """`export:<image>:<type>`; ``number`` tells apart two outputs of one type (`oci.2`), and
    a per-platform export ends with its platform."""
    kind = output_type if number is None else f"{output_type}.{number}"
    return task(EXPORT, image, kind) if platform is None else task(EXPORT, image, kind, platform)


def kind(name: str) -> tuple[str, str | None, str | None]:
    """(kind, image, platform) of a task name: `build:demo:linux/arm64` is a "build" of one
    platform, `build:demo` the "image" chain, `push:…`, `manifest:demo`; anything else is
    its own kind (registries, export, inspect, …)."""
    parts = name.split(":", 2)
    if parts[0] in (BUILD, PUSH) and len(parts) == 3:
        return parts[0], parts[1], parts[2]
    if parts[0] == BUILD and len(parts) == 2:
        return IMAGE, parts[1], None
    if parts[0] == MANIFEST and len(parts) == 2:
        return MANIFEST, parts[1], None
    return parts[0], parts[1] if len(parts) > 1 else None, None
