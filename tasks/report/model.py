"""The build report's model: what each task of one doit run did, per image and platform.

Pure: the reporter (tasks/reporter.py) hands in what it saw, this turns it into the dict
written as `.multiarch/report.json`, which report_html renders.
"""

import os
from collections import Counter
from dataclasses import dataclass, field

from ..doit import names
from ..model.manifest import Image, Manifest

# A platform's state, best news last; also the order of the summary's counts.
STATES = ("failed", "not run", "up to date", "cached", "built", "pushed")
REPORT_VERSION = 1


@dataclass
class TaskRun:
    """One task as the reporter saw it.

    ``outcome`` is "ran", "failed", "up to date", "ignored" or "not run" (selected but never
    started, e.g. after a failure); ``start``/``end`` are seconds since the run began, set
    only when its actions ran; ``values`` is what its steps returned (for an up-to-date
    task: what they returned when it last ran).
    """

    name: str
    outcome: str = "not run"
    start: float | None = None
    end: float | None = None
    values: dict = field(default_factory=dict)

    @property
    def duration(self) -> float | None:
        if self.start is None or self.end is None:
            return None
        return max(0.0, self.end - self.start)


def task_state(run: TaskRun | None, strategy: str = "manifest",
               built: TaskRun | None = None) -> str:
    """What one task's outcome means for the image: a build served by its content tag is
    "cached" (and so is the push after it, which only passes the registry's digests on,
    ``built`` being that build), a buildx build (which pushes) or a push or list that ran
    is "pushed"."""
    if run is None or run.outcome in ("not run", "ignored"):
        return "not run"
    if run.outcome in ("failed", "up to date"):
        return run.outcome
    kind = names.kind(run.name)[0]
    if kind == "build":
        return "cached" if run.values.get("source") == "registry" else "built"
    if kind == "push" and built is not None and task_state(built) == "cached":
        return "cached"
    if kind in ("push", "manifest") or (kind == "image" and strategy == "buildx"):
        return "pushed"
    return "ran"


def platform_state(build: str, push: str) -> str:
    """One cell of the table from its build and push states."""
    if "failed" in (build, push):
        return "failed"
    if build == "cached":
        return "cached"  # the push only passes the registry's digests on
    if "pushed" in (build, push):  # a buildx build pushes
        return "pushed"
    if build == "built":
        return "built"
    if "up to date" in (build, push):
        return "up to date"
    return "not run"


def default_builder() -> str:
    """The engine a step ran on when it does not say: DOCKER_HOST, the docker context, or
    "default"."""
    return os.environ.get("DOCKER_HOST") or os.environ.get("DOCKER_CONTEXT") or "default"


def _step(run: TaskRun | None, strategy: str, built: TaskRun | None = None) -> dict | None:
    if run is None:
        return None
    return {"task": run.name, "state": task_state(run, strategy, built),
            "start": _round(run.start), "duration": _round(run.duration)}


def _round(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)


def _digest_of(reference: str | None) -> str | None:
    return reference.rpartition("@")[2] if reference else None


def platform_entry(image: Image, platform, runs: dict[str, TaskRun], builder: str) -> dict:
    """A cell: state, digests, builder, QEMU and timing of one platform of one image."""
    strategy = image.method.strategy
    if strategy == "buildx":
        build, push = runs.get(names.build(image.name)), None
    else:
        build = runs.get(names.build(image.name, platform))
        push = runs.get(names.push(image.name, platform))
    built = build.values if build else {}
    tags = (push.values if push else {}).get("digests") or built.get("digests") or {}
    listed = build if strategy == "buildx" else runs.get(names.manifest(image.name))
    children = listed.values.get("children", {}) if listed else {}
    builder = (built.get("builders") or {}).get(str(platform)) or builder
    refs = image.platform_refs(platform)
    ran = [run.duration for run in (build, push) if run and run.duration is not None]
    return {
        "platform": str(platform),
        "state": platform_state(task_state(build, strategy), task_state(push, strategy, build)),
        "input_digest": built.get("input_digest"),
        "image_digest": (tags.get(refs[0]) if refs else None)
        or (_digest_of(children.get(str(platform))) if strategy == "buildx" else None),
        "list_entry": _digest_of(children.get(str(platform))),
        "tags": dict(tags),
        "builder": built.get("builder") or builder,
        "emulated": built.get("emulated"),
        "duration": _round(sum(ran)) if ran else None,
        "steps": {name: step for name, step in
                  (("build", _step(build, strategy)), ("push", _step(push, strategy, build)))
                  if step is not None},
    }


def image_entry(image: Image, runs: dict[str, TaskRun], builder: str) -> dict:
    publisher = runs.get(names.published(image))
    return {
        "name": image.name,
        "repository": image.repository,
        "strategy": image.method.strategy,
        "list_state": task_state(publisher, image.method.strategy),
        "lists": dict(publisher.values.get("lists", {})) if publisher else {},
        "platforms": [platform_entry(image, p, runs, builder) for p in image.platforms],
    }


def task_entry(run: TaskRun, runs: dict[str, TaskRun], builders: dict[tuple[str, str], str],
               builder: str, strategies: dict[str, str]) -> dict:
    """One task of the timeline; a push or list runs on the engine its build ran on."""
    kind, image, platform = names.kind(run.name)
    own = run.values.get("builder") or builders.get((image, platform)) or builder
    built = runs.get(names.build(image, platform)) if kind == names.PUSH else None
    entry = {
        "name": run.name, "kind": kind, "image": image, "platform": platform,
        "state": task_state(run, strategies.get(image, "manifest"), built),
        "start": _round(run.start), "duration": _round(run.duration),
        "builder": own, "emulated": run.values.get("emulated") if kind == "build" else None,
    }
    if kind == "build" and run.duration is not None and "build_seconds" in run.values:
        entry["build_seconds"] = run.values["build_seconds"]  # its share of a bake
    return entry


def build_report(manifest: Manifest, runs: dict[str, TaskRun], started: str, wall: float,
                 command: list[str] | None = None, builder: str | None = None) -> dict:
    """The whole report of one run, as JSON-ready data.

    Args:
        runs: every task doit looked at, by name.
        started: when the run began (ISO 8601, UTC); ``wall``: its length in seconds.
    """
    builder = builder or default_builder()
    images = [image_entry(image, runs, builder) for image in manifest.images]
    builders = {(image["name"], cell["platform"]): cell["builder"]
                for image in images for cell in image["platforms"]}
    strategies = {image.name: image.method.strategy for image in manifest.images}
    tasks = [task_entry(run, runs, builders, builder, strategies) for run in runs.values()]
    tasks.sort(key=lambda t: (t["start"] is None, t["start"] or 0, t["name"]))
    return {
        "version": REPORT_VERSION,
        "manifest": str(manifest.path),
        "command": list(command or []),
        "started": started,
        "wall_seconds": round(wall, 3),
        "summary": summary(images, tasks),
        "images": images,
        "tasks": tasks,
    }


def summary(images: list[dict], tasks: list[dict]) -> dict:
    """Counts of platform states, tasks run, and the time builds spent under QEMU (a baked
    build's own steps, not the task that waited for the whole bake)."""
    counts = Counter(cell["state"] for image in images for cell in image["platforms"])
    builds = [(t.get("build_seconds", t["duration"]), t["emulated"]) for t in tasks
              if t["kind"] == "build" and t["state"] == "built" and t["duration"] is not None]
    return {
        "platforms": {state: counts[state] for state in reversed(STATES) if counts[state]},
        "tasks_run": sum(1 for t in tasks if t["duration"] is not None),
        "tasks_failed": [t["name"] for t in tasks if t["state"] == "failed"],
        "qemu_seconds": round(sum(seconds for seconds, emulated in builds if emulated), 3),
        "qemu_builds": sum(1 for _, emulated in builds if emulated),
        "native_seconds": round(sum(seconds for seconds, emulated in builds
                                    if emulated is False), 3),
    }


def runs_anything(runs: dict[str, TaskRun]) -> bool:
    """Whether the run touched a build, push or list: `doit doctor` or `doit status` alone
    keep the last build's report."""
    return any(names.kind(name)[0] in (names.BUILD, names.PUSH, names.MANIFEST, names.IMAGE)
               for name in runs)
