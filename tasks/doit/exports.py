"""Export tasks: `outputs:` other than registry, each a doit task with its file targets."""

from collections import Counter
from collections.abc import Iterator
from functools import partial

from doit.exceptions import TaskFailed

from ...builders.stages import export
from ..model.errors import ManifestError
from ..model.manifest import Image
from ..model.methods import Output
from ..model.platforms import Platform
from . import names
from .checkers import config_changed, inputs_unchanged
from .generate import Run, bases, group, image_names, step


def export_tasks(run: Run) -> Iterator[dict]:
    """`export:<image>:<type>` (`...:<platform>` when per platform) for every output.

    `registry` is the build's push, not an export. `image` loads into the engine, which the
    manifest strategy's per-platform builds already do, so there it makes no task. A
    per-platform dest (`{platform}`, `{arch}`) or a docker tar (one platform per tar) makes
    one task per platform.
    """
    manifest = run.manifest
    yield group("export every image's outputs: tars, OCI layouts, rootfs, loads "
                f"({image_names(manifest)})")
    for image in manifest.images:
        counts = Counter(output.type for output in image.method.outputs)
        seen = Counter()
        for index, output in enumerate(image.method.outputs):
            seen[output.type] += 1
            if output.type == "registry":
                continue
            if output.type == "image" and image.method.strategy == "manifest":
                continue
            number = seen[output.type] if counts[output.type] > 1 else None
            yield from _output_tasks(run, image, output, index, number)


def _output_tasks(run: Run, image: Image, output: Output, index: int,
                  number: int | None) -> Iterator[dict]:
    base = run.manifest.path.parent
    name = names.export(image.name, output.type, number)
    if not export.one_per_platform(image, output):
        yield _task(run, image, output, name, image.platforms, output.path(base))
        return
    if not output.per_platform and output.dest is not None and len(image.platforms) > 1:
        problem = ManifestError(
            run.manifest.path.name, f"images.{image.name}.outputs[{index}].dest",
            f"type {output.type} writes one file per platform here; put {{arch}} or "
            f"{{platform}} in {output.dest!r}")
        yield {"name": names.subtask(name), "doc": str(problem),
               "actions": [partial(_fail, str(problem))], "verbosity": 2}
        return
    for platform in image.platforms:
        yield _task(run, image, output, names.export(image.name, output.type, number, platform),
                    (platform,), output.path(base, platform))


def _task(run: Run, image: Image, output: Output, name: str,
          platforms: tuple[Platform, ...], dest) -> dict:
    argv = export.export_argv(image, output, list(platforms), dest)
    task = {
        "name": names.subtask(name),
        "doc": f"docker buildx build --platform {','.join(map(str, platforms))} "
               f"--output {export.output_flag(output, dest)}",
        "actions": [(step, [export.export, image, output, list(platforms), dest])],
        "uptodate": [inputs_unchanged(image, platforms, run.inputs),
                     config_changed({"argv": argv})],
        "task_dep": bases(run, image),
        "verbosity": 2,
    }
    if dest is not None:
        task["targets"] = [str(dest)]
        # doit's own clean removes files and empty folders only; a rootfs is a tree.
        task["clean"] = [(export.remove, [dest])] if output.type == "local" else True
    return run.recorded(task)


def _fail(message: str) -> TaskFailed:
    return TaskFailed(message)
