"""Task generation: a Manifest in, doit task dicts out; nothing here runs docker."""

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

from doit.exceptions import TaskFailed
from doit.task import result_dep
from doit.tools import config_changed

from ...builders.checks import preflight
from ...builders.errors import DockerError
from ...builders.registry.probe import RegistryProbe
from ..inputs.digests import Inputs, inputs_unchanged
from ..inputs.prefetch import Prefetch
from ..model.manifest import Image, Manifest
from ..model.platforms import Platform
from ..model.registries import buildkitd_config
from ..report import status
from .checkers import still_in_registry
from .later import builder

# Builders are imported when a task runs, so `doit list` and a no-op build load none of them.
_BUILD = builder("multiarch.builders.stages.build:build_or_reuse")
_BUILDX = builder("multiarch.builders.stages.buildx:build_and_push")
_FALLBACK = builder("multiarch.builders.stages.buildx:manifest_fallback")
_INSPECT = builder("multiarch.builders.stages.inspect:inspect")
_PUBLISH = builder("multiarch.builders.stages.manifest_list:publish")
_PUSH = builder("multiarch.builders.stages.push:push")
_BUILDKITD = builder("multiarch.builders.stages.buildx:write_buildkitd_toml")


@dataclass
class Run:
    """What the tasks of one doit run share: the manifest, its inputs, the registry probe.

    Nothing here does I/O until a task is checked or run, so `doit list` stays instant.
    ``verify`` makes pushes and lists up to date only while the registry still has them.
    """

    manifest: Manifest
    inputs: Inputs
    probe: RegistryProbe
    verify: bool = True

    def in_registry(self, refs: tuple[str, ...], key: str) -> list[still_in_registry]:
        """The registry-backed uptodate check of ``refs``, or none with `verify=0` (where it
        would answer True: 500 calls doit need not make on a 100-image no-op)."""
        return [still_in_registry(refs, key, self.probe)] if self.verify else []

    @classmethod
    def of(cls, manifest: Manifest, verify: bool = True,
           prefetched: Prefetch | None = None) -> "Run":
        """``prefetched``: contexts and bases being fetched ahead (tasks.prefetch), for a run
        that will check tasks."""
        probe = RegistryProbe(manifest.registries, manifest.retries, manifest.state_dir)
        for image in manifest.images:
            probe.expect(image.refs)
            for platform in image.platforms:
                probe.expect(image.platform_refs(platform))
        return cls(manifest, Inputs(manifest, probe, prefetched=prefetched), probe, verify)


def _manifest_strategy(manifest: Manifest) -> list[Image]:
    return [image for image in manifest.images if image.method.strategy == "manifest"]


def step(action: Callable, *args, **kwargs) -> dict | TaskFailed | None:
    """Run a builder (a tasks.later.builder: imported now, not at task creation); a DockerError
    becomes doit's TaskFailed, shown without a traceback."""
    try:
        return action(*args, **kwargs)
    except DockerError as err:
        return TaskFailed(str(err))


def _names(manifest: Manifest) -> str:
    return ", ".join(image.name for image in manifest.images)


def group(doc: str) -> dict:
    """A group task's dict: no actions, and up to date, or doit records its "success" on every
    run, one sqlite commit (an fsync, 5-40 ms here) on a no-op that changed nothing else."""
    return {"name": None, "doc": doc, "uptodate": [True]}


def _platform_task(image: Image, platform: Platform) -> str:
    return f"{image.name}:{platform}"


def published(image: Image) -> str:
    """The task after which ``image``'s lists are in the registry (what dependents wait for)."""
    return f"build:{image.name}" if image.method.strategy == "buildx" else f"manifest:{image.name}"


def _bases(run: Run, image: Image) -> list[str]:
    # A base is pulled from the registry (--pull), so its list must be there first.
    return [published(run.manifest.image(base)) for base in image.depends_on]


def build_tasks(run: Run) -> Iterator[dict]:
    """`build:<image>:<platform>` builds one platform; `build:<image>` runs the whole chain.

    With the buildx strategy `build:<image>` is the one buildx build of every platform.
    Either way it ends by inspecting the lists it published.
    """
    manifest = run.manifest
    yield group(f"build, push and list every image ({_names(manifest)})")
    for image in manifest.images:
        if image.method.strategy == "buildx":
            yield _buildx_task(run, image)
            continue
        yield {
            "name": image.name,
            "doc": f"{image.name}: build every platform, push, then the list {image.refs[0]}",
            "actions": [(step, [_INSPECT, image, run.manifest.registries])],
            "uptodate": [result_dep(f"manifest:{image.name}"),
                         *run.in_registry(image.refs, "lists")],
            "verbosity": 2,
        }
        for platform in image.platforms:
            yield {
                "name": _platform_task(image, platform),
                "doc": f"docker build --platform {platform} -t {image.platform_refs(platform)[0]}",
                "actions": [(step, [_BUILD, image, platform, manifest.state_dir,
                                    run.inputs, manifest.cache == "registry",
                                    manifest.registries, manifest.routing])],
                "uptodate": [inputs_unchanged(image, platform, run.inputs)],
                "task_dep": _bases(run, image),
                "setup": ["registries"],
                "verbosity": 2,
            }


def _buildx_task(run: Run, image: Image) -> dict:
    state_dir = run.manifest.state_dir
    fallback = None
    if image.method.fallback == "manifest":  # a partial, not a closure: `-P process` pickles it
        fallback = partial(_FALLBACK, image, state_dir, run.inputs, run.manifest.insecure_hosts)
    platforms = ",".join(str(p) for p in image.platforms)
    return {
        "name": image.name,
        "doc": f"docker buildx build --platform {platforms} -t {image.refs[0]} --push",
        "actions": [(step, [_BUILDX, image, state_dir, run.manifest.builder,
                            fallback]),
                    (step, [_INSPECT, image, run.manifest.registries])],
        "uptodate": [inputs_unchanged(image, image.platforms, run.inputs),
                     *run.in_registry(image.refs, "lists")],
        "task_dep": _bases(run, image)
        + (["buildkitd"] if run.manifest.builder == "auto" else []),
        "setup": ["registries"],
        "verbosity": 2,
    }


def inspect_tasks(run: Run) -> Iterator[dict]:
    """`inspect:<image>`: print each list like `docker manifest inspect --verbose`, and check it."""
    yield group(f"print and check every published list ({_names(run.manifest)})")
    for image in run.manifest.images:
        yield {
            "name": image.name,
            "doc": f"check {', '.join(image.refs)} lists exactly {len(image.platforms)} platforms",
            "actions": [(step, [_INSPECT, image, run.manifest.registries])],
            "uptodate": [False],
            "verbosity": 2,
        }


def push_tasks(run: Run) -> Iterator[dict]:
    """`push:<image>:<platform>` pushes that platform's tags once its image ID changed."""
    manifest = run.manifest
    yield group(f"push every per-platform image ({_names(manifest)})")
    for image in _manifest_strategy(manifest):
        for platform in image.platforms:
            built = f"build:{_platform_task(image, platform)}"
            yield {
                "name": _platform_task(image, platform),
                "doc": f"docker push {image.platform_refs(platform)[0]}",
                "actions": [(step, [_PUSH, image, platform, manifest.state_dir],
                             {"routing": manifest.routing,
                              "registries": manifest.registries})],
                "getargs": {"built": (built, None)},
                "setup": ["registries"],
                "uptodate": [result_dep(built),
                             *run.in_registry(image.platform_refs(platform), "digests")],
                "verbosity": 2,
            }


def manifest_tasks(run: Run) -> Iterator[dict]:
    """`manifest:<image>` creates and pushes the list once every platform is pushed."""
    manifest = run.manifest
    yield group(f"create and push every manifest list ({_names(manifest)})")
    for image in _manifest_strategy(manifest):
        pushes = [f"push:{_platform_task(image, platform)}" for platform in image.platforms]
        shape = {"refs": list(image.refs), "platforms": [str(p) for p in image.platforms]}
        yield {
            "name": image.name,
            "doc": f"docker manifest create/push {', '.join(image.refs)}",
            "actions": [(step, [_PUBLISH, image, manifest.insecure_hosts])],
            "uptodate": [
                config_changed(shape),
                *(result_dep(name) for name in pushes),
                *run.in_registry(image.refs, "lists"),
            ],
            "verbosity": 2,
        }


def doctor_task(run: Run) -> dict:
    """`doctor`: check the engine, builder, QEMU handlers and registries this manifest needs."""
    return {
        "doc": "check the engine, builder, QEMU handlers and registries this manifest needs",
        "actions": [(step, [builder("multiarch.builders.checks.doctor:doctor"), run.manifest])],
        "uptodate": [False],
        "verbosity": 2,
    }


def status_task(run: Run) -> dict:
    """`status`: what is up to date, and why the rest is not (the answer to "why rebuild?")."""
    return {
        "doc": "per image and platform: up to date, or what changed; and what the registry has",
        "actions": [(status.print_report, [run.manifest, run.inputs, run.probe])],
        "uptodate": [False],
        "verbosity": 2,
    }


def registries_task(run: Run) -> dict:
    """`registries`: a /v2/ probe of each registry, run (as a doit setup task) only before a
    build or push that will really happen."""
    hosts = ", ".join(preflight.registry_hosts(run.manifest)) or "none"
    return {
        "doc": f"check that the registries answer and accept your credentials ({hosts})",
        "actions": [(step, [preflight.preflight, run.manifest])],
        "uptodate": [False],
    }


def buildkitd_task(run: Run) -> dict:
    """`buildkitd`: BuildKit's registry settings, rewritten only when `registries:` changes."""
    path = run.manifest.state_dir / "buildkitd.toml"
    return {
        "doc": f"write {path.name} for buildx builders from the registries section",
        "actions": [(_BUILDKITD, [run.manifest.registries, path])],
        "targets": [str(path)],
        "uptodate": [config_changed(buildkitd_config(run.manifest.registries))],
        "clean": True,
        "verbosity": 2,
    }
