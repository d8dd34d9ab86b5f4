"""doit uptodate checkers: a build's inputs unchanged, what a task pushed still there, and
doit's own result_dep and config_changed, each with its signature ready.

doit asks ``inspect.signature`` of every checker of every task it checks, to see whether it
takes ``task`` and ``values`` (doit/dependency.py, Dependency.get_status): ~28 µs for a
callable object, for 1,400 checkers in a 100-image no-op. A ``__signature__`` on the class
answers at once (Python's inspect protocol; doit's own classes are left as they are).
"""

from inspect import Parameter, Signature

from doit import task as doit_task
from doit import tools as doit_tools

from ...builders.registry.probe import UNKNOWN
from ..inputs.digests import Inputs, with_entries
from ..model.manifest import Image
from ..model.platforms import Platform

CHECKER_SIGNATURE = Signature(
    [Parameter(name, Parameter.POSITIONAL_OR_KEYWORD) for name in ("task", "values")])


class result_dep(doit_task.result_dep):  # noqa: N801 - doit's name
    """doit's result_dep: up to date while the task named has the result it had."""

    __signature__ = CHECKER_SIGNATURE


class config_changed(doit_tools.config_changed):  # noqa: N801 - doit's name
    """doit's config_changed: up to date while the value hashes as it did."""

    __signature__ = CHECKER_SIGNATURE


class inputs_unchanged:  # noqa: N801 - named like doit's own checkers (config_changed)
    """True while the build inputs hash as they did last time.

    ``platform`` may be several platforms, for a buildx build that makes them all at once.
    The digest is computed when doit asks, not when tasks are created, so ``doit list``
    reads no context. It never raises: a failure to hash counts as "changed", and the
    build then reports the real problem.
    """

    __signature__ = CHECKER_SIGNATURE

    def __init__(self, image: Image, platform: Platform | tuple[Platform, ...],
                 inputs: Inputs | None = None):
        self.image = image
        self.platforms = platform if isinstance(platform, tuple) else (platform,)
        self.inputs = inputs or Inputs()

    def __call__(self, task, values) -> bool:
        try:
            digests = [self.inputs.digest(self.image, p) for p in self.platforms]
            parts = [self.inputs.parts(self.image, p) for p in self.platforms]
        except (OSError, ValueError):
            return False
        digest = digests[0] if len(digests) == 1 else "+".join(digests)

        def save():  # once the build succeeded: what was hashed here, for `doit status`
            entries = self.inputs.entries(self.image)
            for platform, part in zip(self.platforms, parts, strict=True):
                self.inputs.record(self.image, platform, with_entries(part, entries))
            if self._fell_back(task.values):
                return {"input_digest": f"fell back: {digest}"}
            return {"input_digest": digest}

        task.value_savers.append(save)
        return values.get("input_digest") == digest

    def _fell_back(self, built: dict) -> bool:
        """Whether the build ran on another engine than its route (its node was down), while
        what it pulls depends on the platform it builds on (`FROM --platform=$BUILDPLATFORM`):
        the digest then assumed a build platform it did not have, so it is saved as never
        matching, and the next run builds it again."""
        manifest = self.inputs.manifest
        if manifest is None or "builder" not in built or len(self.platforms) != 1:
            return False
        platform = self.platforms[0]
        return (built["builder"] != manifest.routing.node_for(platform).name
                and platform in self.image.pulls_differ_here)

    def __repr__(self) -> str:
        platforms = ", ".join(repr(str(p)) for p in self.platforms)
        return f"inputs_unchanged({self.image.name!r}, {platforms})"


class still_in_registry:  # noqa: N801 - named like doit's own checkers (config_changed)
    """True while every reference this task pushed still points at the digest it pushed.

    ``key`` names the task's saved mapping of reference → digest ("digests" for pushes,
    "lists" for manifest lists). A registry that does not answer proves nothing either way,
    so the task's own record stands; a tag that is gone or moved makes the task run again.
    Never raises.
    """

    __signature__ = CHECKER_SIGNATURE

    def __init__(self, refs: tuple[str, ...], key: str, probe=None):
        self.refs = refs
        self.key = key
        self.probe = probe

    def __call__(self, task, values) -> bool:
        if self.probe is None:
            return True
        pushed = values.get(self.key) or {}
        for ref in self.refs:
            found = self.probe.digest(ref)
            if found != UNKNOWN and found != pushed.get(ref):
                return False
        return True

    def __repr__(self) -> str:
        return f"still_in_registry({', '.join(self.refs)})"
