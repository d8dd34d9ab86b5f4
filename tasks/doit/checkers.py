"""doit uptodate checkers that ask the registry whether what a task pushed is still there."""

from inspect import Parameter, Signature

from doit import task as doit_task
from doit import tools as doit_tools

from ...builders.registry.probe import UNKNOWN

# doit calls inspect.signature() on every uptodate callable of every task it checks: ~1,900
# calls, ~0.1 s, on a 100-image no-op. A ready __signature__ is returned at once. doit's own
# checkers get it too (`getargs` makes result_dep instances of its own).
CHECKER_SIGNATURE = Signature(
    [Parameter(name, Parameter.POSITIONAL_OR_KEYWORD) for name in ("task", "values")])
DOIT_CHECKERS = (doit_task.result_dep, doit_tools.config_changed)
for _checker in DOIT_CHECKERS:
    _checker.__signature__ = CHECKER_SIGNATURE


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
