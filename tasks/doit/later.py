"""Builder functions named by module, imported when a task runs: `doit list` loads none."""

import importlib
from collections.abc import Callable


class builder:  # noqa: N801 - reads as a function reference in task dicts
    """``builder("builders.push:push")`` calls ``builders.push.push`` on first use.

    Task creation (every doit command, `list` included) then imports no builder module,
    and a no-op build, which runs no action, imports none either.
    """

    __slots__ = ("module", "name")

    def __init__(self, path: str) -> None:
        self.module, self.name = path.split(":")

    def resolve(self) -> Callable:
        return getattr(importlib.import_module(self.module), self.name)

    def __call__(self, *args, **kwargs):
        return self.resolve()(*args, **kwargs)

    def __eq__(self, other) -> bool:
        return isinstance(other, builder) and (other.module, other.name) == (self.module, self.name)

    def __hash__(self) -> int:
        return hash((self.module, self.name))

    def __repr__(self) -> str:
        return f"{self.module}.{self.name}"
