"""doit uptodate checkers that ask the registry whether what a task pushed is still there."""

from builders.probe import UNKNOWN


class still_in_registry:  # noqa: N801 - named like doit's own checkers (config_changed)
    """True while every reference this task pushed still points at the digest it pushed.

    ``key`` names the task's saved mapping of reference → digest ("digests" for pushes,
    "lists" for manifest lists). A registry that does not answer proves nothing either way,
    so the task's own record stands; a tag that is gone or moved makes the task run again.
    Never raises.
    """

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
