"""The exceptions builders raise: what was being done, the command, its output, and its facts."""

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


class RegistryError(DockerError):
    """A registry operation that failed, with the facts retries are decided on.

    ``status`` is the HTTP status the registry answered, None when no answer came; then
    ``dropped`` says how the connection failed ("reset the connection", "timed out"), or is
    None when it did not merely drop (an untrusted certificate, an unknown host name).
    ``attempts`` counts the tries made of ``operation`` against ``host``.
    """

    def __init__(self, message: str, *, host: str, operation: str, status: int | None = None,
                 dropped: str | None = None, attempts: int = 1, argv: list[str] | None = None,
                 output: str = ""):
        super().__init__(message, argv, output)
        self.host, self.operation = host, operation
        self.status, self.dropped, self.attempts = status, dropped, attempts
