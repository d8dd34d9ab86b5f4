"""Task generation: a Manifest in, doit task dicts out; nothing here runs docker."""

from collections.abc import Callable, Iterator

from doit.exceptions import TaskFailed
from doit.task import result_dep
from doit.tools import config_changed

from builders import build, manifest_list, push
from builders.errors import DockerError
from tasks.inputs import inputs_unchanged
from tasks.manifest import Image, Manifest
from tasks.platforms import Platform


def step(action: Callable, *args) -> dict | TaskFailed:
    """Run a builder; a DockerError becomes doit's TaskFailed, shown without a traceback."""
    try:
        return action(*args)
    except DockerError as err:
        return TaskFailed(str(err))


def _names(manifest: Manifest) -> str:
    return ", ".join(image.name for image in manifest.images)


def _platform_task(image: Image, platform: Platform) -> str:
    return f"{image.name}:{platform}"


def build_tasks(manifest: Manifest) -> Iterator[dict]:
    """`build:<image>:<platform>` builds one platform; `build:<image>` runs the whole chain."""
    yield {"name": None, "doc": f"build, push and list every image ({_names(manifest)})"}
    skip = (manifest.state_dir,)
    for image in manifest.images:
        yield {
            "name": image.name,
            "doc": f"{image.name}: build every platform, push, then the list {image.refs[0]}",
            "actions": None,
            "task_dep": [f"manifest:{image.name}"],
        }
        for platform in image.platforms:
            yield {
                "name": _platform_task(image, platform),
                "doc": f"docker build --platform {platform} -t {image.platform_refs(platform)[0]}",
                "actions": [(step, [build.build, image, platform, manifest.state_dir])],
                "uptodate": [inputs_unchanged(image, platform, skip, manifest)],
                # A base is pulled from the registry (--pull), so its list must be there first.
                "task_dep": [f"manifest:{base}" for base in image.depends_on],
                "verbosity": 2,
            }


def push_tasks(manifest: Manifest) -> Iterator[dict]:
    """`push:<image>:<platform>` pushes that platform's tags once its image ID changed."""
    yield {"name": None, "doc": f"push every per-platform image ({_names(manifest)})"}
    for image in manifest.images:
        for platform in image.platforms:
            yield {
                "name": _platform_task(image, platform),
                "doc": f"docker push {image.platform_refs(platform)[0]}",
                "actions": [(step, [push.push, image, platform])],
                "uptodate": [result_dep(f"build:{_platform_task(image, platform)}")],
                "verbosity": 2,
            }


def manifest_tasks(manifest: Manifest) -> Iterator[dict]:
    """`manifest:<image>` creates and pushes the list once every platform is pushed."""
    yield {"name": None, "doc": f"create and push every manifest list ({_names(manifest)})"}
    for image in manifest.images:
        pushes = [f"push:{_platform_task(image, platform)}" for platform in image.platforms]
        shape = {"refs": list(image.refs), "platforms": [str(p) for p in image.platforms]}
        yield {
            "name": image.name,
            "doc": f"docker manifest create/push {', '.join(image.refs)}",
            "actions": [(step, [manifest_list.publish, image])],
            "uptodate": [config_changed(shape), *(result_dep(name) for name in pushes)],
            "verbosity": 2,
        }
