"""The one exception builders raise: what was being done, the command, and its output."""

import shlex


class DockerError(Exception):
    """A docker command or Engine API call that failed, with its evidence.

    ``str()`` is the first line a user reads (what failed); ``output`` keeps the tail of what
    docker said, which doit prints below it.
    """

    def __init__(self, message: str, argv: list[str] | None = None, output: str = ""):
        super().__init__(message)
        self.message = message
        self.argv = argv
        self.output = output

    def __str__(self) -> str:
        lines = [self.message]
        if self.argv:
            lines.append(f"command: {shlex.join(self.argv)}")
        tail = self.output.strip().splitlines()[-20:]
        lines.extend(f"  {line}" for line in tail)
        return "\n".join(lines)
