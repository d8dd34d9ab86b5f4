"""Stand-in HTTP servers for unit tests: a registry on 127.0.0.1, an engine on a unix socket."""

import contextlib
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from socketserver import ThreadingUnixStreamServer


class Handler(BaseHTTPRequestHandler):
    """Quiet, and answers with ``reply``."""

    def reply(self, status: int, headers: dict[str, str] | None = None, body: bytes = b"") -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@contextlib.contextmanager
def serving(handler: type[Handler], socket: Path | None = None) -> Iterator[str]:
    """Serve ``handler`` on 127.0.0.1 (yields "127.0.0.1:<port>") or on unix ``socket``."""
    make: Callable = ThreadingUnixStreamServer if socket else ThreadingHTTPServer
    server = make(str(socket) if socket else ("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"unix://{socket}" if socket else f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
