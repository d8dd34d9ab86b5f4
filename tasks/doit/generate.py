"""Task generation: a Manifest in, doit task dicts out; nothing here runs docker."""

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from doit.exceptions import TaskFailed

from ...builders.checks import doctor, preflight
from ...builders.errors import DockerError
from ...builders.registry.probe import RegistryProbe
from ...builders.stages import build, buildx, inspect, manifest_list, push
from ..inputs.digests import Inputs
from ..model.engines import PODMAN
from ..model.files import write_atomic
from ..model.manifest import Image, Manifest
from ..model.registries import buildkitd_config
from ..report import status
from . import names
from .batch import Batches
from .checkers import config_changed, inputs_unchanged, result_dep, still_in_registry
from .state import void_record


@dataclass
class Run:
    """What the tasks of one doit run share: the manifest, its inputs, the registry probe.

    Nothing here does I/O until a task is checked or run, so `doit list` stays instant.
    ``verify`` makes pushes and lists up to date only while the registry still has them.
    ``records``: the state DB in which a task voids its record before it runs (see
    ``recorded``); None leaves the records to doit. ``batches``: the bakes that make a
    run's stale builds together (tasks.doit.batch); None builds each on its own.
    """

    manifest: Manifest
    inputs: Inputs
    probe: RegistryProbe
    verify: bool = True
    records: str | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)  # this run's, among others'
    batches: Batches | None = None

    def in_registry(self, refs: tuple[str, ...], key: str) -> list[still_in_registry]:
        """The registry-backed uptodate check of ``refs``, or none with `verify=0` (where it
        would answer True: 500 calls doit need not make on a 100-image no-op)."""
        return [still_in_registry(refs, key, self.probe)] if self.verify else []

    def recorded(self, task: dict) -> dict:
        """``task`` with a first action that voids its record in doit's state
        (state.void_record), for a task whose record says when it is up to date: one stopped
        half-way is then never taken for its earlier, finished self."""
        if self.records is not None:
            task["actions"] = [(void_record, [self.records]), *task["actions"]]
        return task

    def after_registries(self, task: dict) -> dict:
        """``task`` with the `registries` check as its setup task, and a first action (after
        ``recorded``'s) that refuses to run once that check failed in this run
        (``after_preflight``)."""
        task["setup"] = ["registries"]
        check = (after_preflight, [self.manifest.state_dir, self.id])
        task["actions"] = [check, *task["actions"]]
        return task

    @classmethod
    def of(cls, manifest: Manifest, verify: bool = True, records: str | None = None) -> "Run":
        probe = RegistryProbe(manifest.registries, manifest.retries)
        for image in manifest.images:
            probe.expect(image.refs)
            for platform in image.platforms:
                probe.expect(image.platform_refs(platform))
        return cls(manifest, Inputs(manifest, probe), probe, verify, records)


def _manifest_strategy(manifest: Manifest) -> list[Image]:
    return [image for image in manifest.images if image.method.strategy == "manifest"]


def step(action: Callable, *args, **kwargs) -> dict | TaskFailed | None:
    """Run a builder stage; a DockerError becomes doit's TaskFailed, shown without a
    traceback."""
    try:
        return action(*args, **kwargs)
    except DockerError as err:
        return TaskFailed(str(err))


PREFLIGHT_FAILED = "preflight-failed"  # in the state folder: the id of the run whose check failed


def _preflight(manifest: Manifest, run_id: str) -> None:
    """preflight.preflight, leaving word of a failure for the tasks that need it.

    doit runs a task whose setup task failed even so under `continue` (the default here): it
    looks for failed dependencies before a task's setup tasks run, not after. A registry
    that is down or refuses the credentials must stop every build, not only the first.
    """
    try:
        preflight.preflight(manifest)
    except DockerError:
        write_atomic(manifest.state_dir / PREFLIGHT_FAILED, run_id)
        raise


def after_preflight(state_dir: Path, run_id: str) -> TaskFailed | None:
    """A task's first action: refuse once this run's `registries` check failed. A file, not
    a variable: under `doit -P process` the check ran in another process."""
    try:
        failed = (state_dir / PREFLIGHT_FAILED).read_text() == run_id
    except OSError:
        return None
    return TaskFailed("not run: the registries check failed (see `registries`)") if failed \
        else None


def _build(batches: Batches | None, inputs: Inputs, image: Image, platform, state_dir,
           *rest) -> dict:
    """The build stage given its input digest, hashed when the action runs: making tasks
    (`doit list`) hashes nothing. What a bake of this run made is taken as built; the rest
    builds on its own. Module-level, so `doit -P process` pickles the action."""
    baked = batches.built(image, platform) if batches is not None else None
    if baked is not None:
        return baked
    return build.build_or_reuse(image, platform, state_dir, inputs.digest(image, platform),
                                *rest)


def cli(manifest: Manifest) -> str:
    """The command a task's doc names: podman for `engine: podman`, else docker."""
    return PODMAN if manifest.engine == PODMAN else "docker"


def image_names(manifest: Manifest) -> str:
    """"demo, web": the images a group task's doc names."""
    return ", ".join(image.name for image in manifest.images)


def group(doc: str) -> dict:
    """A group task's dict: no actions, and up to date, or doit records its "success" on every
    run, one sqlite commit (an fsync, 5-40 ms here) on a no-op that changed nothing else."""
    return {"name": None, "doc": doc, "uptodate": [True]}


def bases(run: Run, image: Image) -> list[str]:
    """The tasks that publish the images ``image`` is built FROM: a base is pulled from the
    registry (--pull), so its list must be there first."""
    return [names.published(run.manifest.image(base)) for base in image.depends_on]


def build_tasks(run: Run) -> Iterator[dict]:
    """`build:<image>:<platform>` builds one platform; `build:<image>` runs the whole chain.

    With the buildx strategy `build:<image>` is the one buildx build of every platform.
    Either way it ends by inspecting the lists it published.
    """
    manifest = run.manifest
    yield group(f"build, push and list every image ({image_names(manifest)})")
    for image in manifest.images:
        if image.method.strategy == "buildx":
            yield _buildx_task(run, image)
            continue
        yield run.recorded({
            "name": image.name,
            "doc": f"{image.name}: build every platform, push, then the list {image.refs[0]}",
            "actions": [(step, [inspect.inspect, image, run.manifest.registries])],
            "uptodate": [result_dep(names.manifest(image.name)),
                         *run.in_registry(image.refs, "lists")],
            "verbosity": 2,
        })
        for platform in image.platforms:
            yield run.recorded(run.after_registries({
                "name": names.subtask(names.build(image.name, platform)),
                "doc": f"{cli(manifest)} build --platform {platform} -t "
                       f"{image.platform_refs(platform)[0]}",
                "actions": [(step, [_build, run.batches, run.inputs, image, platform,
                                    manifest.state_dir,
                                    manifest.cache == "registry",
                                    manifest.registries, manifest.routing, manifest.engine])],
                "uptodate": [inputs_unchanged(image, platform, run.inputs)],
                "task_dep": bases(run, image),
                "verbosity": 2,
            }))


def _buildx_task(run: Run, image: Image) -> dict:
    state_dir = run.manifest.state_dir
    fallback = None
    if image.method.fallback == "manifest":  # a partial, not a closure: `-P process` pickles it
        fallback = partial(buildx.manifest_fallback, image, state_dir,
                           partial(run.inputs.digest, image), run.manifest.registries)
    platforms = ",".join(str(p) for p in image.platforms)
    every = tuple(dict.fromkeys(p for other in run.manifest.images
                                if other.method.strategy == "buildx" for p in other.platforms))
    return run.recorded(run.after_registries({
        "name": image.name,
        "doc": f"docker buildx build --platform {platforms} -t {image.refs[0]} --push",
        "actions": [(step, [buildx.build_and_push, image, state_dir, run.manifest.builder,
                            fallback, run.manifest.routing, every,
                            run.manifest.registries]),
                    (step, [inspect.inspect, image, run.manifest.registries])],
        "uptodate": [inputs_unchanged(image, image.platforms, run.inputs),
                     *run.in_registry(image.refs, "lists")],
        "task_dep": bases(run, image)
        + (["buildkitd"] if run.manifest.builder == "auto"
           or (run.manifest.builder is None and run.manifest.routing.routes) else []),
        "verbosity": 2,
    }))


def inspect_tasks(run: Run) -> Iterator[dict]:
    """`inspect:<image>`: print each list like `docker manifest inspect --verbose`, and check it."""
    yield group(f"print and check every published list ({image_names(run.manifest)})")
    for image in run.manifest.images:
        yield {
            "name": image.name,
            "doc": f"check {', '.join(image.refs)} lists exactly {len(image.platforms)} platforms",
            "actions": [(step, [inspect.inspect, image, run.manifest.registries])],
            "uptodate": [False],
            "verbosity": 2,
        }


def push_tasks(run: Run) -> Iterator[dict]:
    """`push:<image>:<platform>` pushes that platform's tags once its image ID changed."""
    manifest = run.manifest
    yield group(f"push every per-platform image ({image_names(manifest)})")
    for image in _manifest_strategy(manifest):
        for platform in image.platforms:
            built = names.build(image.name, platform)
            yield run.recorded(run.after_registries({
                "name": names.subtask(names.push(image.name, platform)),
                "doc": f"{cli(manifest)} push {image.platform_refs(platform)[0]}",
                "actions": [(step, [push.push, image, platform, manifest.state_dir],
                             {"routing": manifest.routing,
                              "registries": manifest.registries,
                              "engine": manifest.engine})],
                "getargs": {"built": (built, None)},
                "uptodate": [result_dep(built),
                             *run.in_registry(image.platform_refs(platform), "digests")],
                "verbosity": 2,
            }))


def manifest_tasks(run: Run) -> Iterator[dict]:
    """`manifest:<image>` creates and pushes the list once every platform is pushed."""
    manifest = run.manifest
    yield group(f"create and push every manifest list ({image_names(manifest)})")
    for image in _manifest_strategy(manifest):
        pushes = [names.push(image.name, platform) for platform in image.platforms]
        shape = {"refs": list(image.refs), "platforms": [str(p) for p in image.platforms]}
        yield run.recorded({
            "name": image.name,
            "doc": "docker buildx imagetools create " + " ".join(f"-t {r}" for r in image.refs),
            "actions": [(step, [manifest_list.publish, image, manifest.registries])],
            "uptodate": [
                config_changed(shape),
                *(result_dep(name) for name in pushes),
                *run.in_registry(image.refs, "lists"),
            ],
            "verbosity": 2,
        })


def doctor_task(run: Run) -> dict:
    """`doctor`: check the engine, builder, QEMU handlers and registries this manifest needs."""
    return {
        "doc": "check the engine, builder, QEMU handlers and registries this manifest needs",
        "actions": [(step, [doctor.doctor, run.manifest])],
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
        "actions": [(step, [_preflight, run.manifest, run.id])],
        "uptodate": [False],
    }


def buildkitd_task(run: Run) -> dict:
    """`buildkitd`: BuildKit's registry settings, rewritten only when `registries:` changes."""
    path = run.manifest.state_dir / "buildkitd.toml"
    return run.recorded({
        "doc": f"write {path.name} for buildx builders from the registries section",
        "actions": [(buildx.write_buildkitd_toml, [run.manifest.registries, path])],
        "targets": [str(path)],
        "uptodate": [config_changed(buildkitd_config(run.manifest.registries))],
        "clean": True,
        "verbosity": 2,
    })
