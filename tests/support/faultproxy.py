"""A fault-injecting HTTP proxy on loopback in front of the test registry (127.0.0.1:5000).

It forwards every request unchanged, Host header included: distribution builds the upload
`Location` it answers from the request's Host, so clients keep coming back through the proxy
without any rewriting. A seeded RNG picks a bounded share of requests to fail instead:

- ``500`` / ``503``: the request is read and answered with that status, never forwarded;
- ``reset``: the request is forwarded (the registry acts on it), then the client's connection
  is closed with SO_LINGER 0, so the client sees a reset and never learns the answer;
- ``stall``: half of the body is moved (half an upload read from the client, or the headers and
  half of a download sent to it), then nothing for ``stall_seconds``, then a reset.

After each fault the next ``clean_after`` requests pass untouched, so an operation of fewer
requests than that succeeds when retried: at most 1/(clean_after+1) of requests fail.
"""

import contextlib
import http.client
import http.server
import random
import socket
import struct
import threading
import time
from collections import Counter

UPSTREAM = ("127.0.0.1", 5000)
KINDS = ("500", "503", "reset", "stall")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
               "proxy-connection"}


class FaultProxy:
    """``with FaultProxy(share=0.3, seed=1) as proxy:`` serves on 127.0.0.1:``proxy.port``.

    Address it as ``localhost:<port>`` (or 127.0.0.1:<port>): loopback registries need no
    daemon.json entry; the engine tries HTTPS first and falls back to HTTP on the proxy's
    plain answer to its TLS hello (see ``handle_one_request``).

    ``methods`` limits the faults to those request methods (e.g. the writes), ``paths`` to
    paths containing it (e.g. "/manifests/"), ``when`` to requests whose headers it accepts,
    ``limit`` their number; ``counts`` holds the faults injected by kind, and ``requests``
    every request served.
    """

    def __init__(self, share: float, seed: int = 0, kinds=KINDS, clean_after: int = 0,
                 methods=None, paths: str = "", stall_seconds: float = 1.0,
                 limit: int | None = None, upstream=UPSTREAM, when=None):
        self.share, self.kinds, self.clean_after = share, tuple(kinds), clean_after
        self.when = when
        self.limit, self.paths = limit, paths
        self.methods = frozenset(methods) if methods else None
        self.stall_seconds, self.upstream = stall_seconds, upstream
        self.random = random.Random(seed)
        self.counts: Counter = Counter()
        self.requests = 0
        self.log: list[str] = []  # "METHOD path -> kind" for each fault, in order
        self._clean = 0
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _handler(self))
        self.port = self._server.server_address[1]

    def __enter__(self) -> "FaultProxy":
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def faults(self) -> int:
        return sum(self.counts.values())

    def choose(self, method: str, path: str, has_body: bool, headers=None) -> str | None:
        """The fault for this request, or None to forward it untouched (one RNG draw each)."""
        with self._lock:
            self.requests += 1
            draw, pick = self.random.random(), self.random.random()
            if (self._clean > 0 or (self.methods and method not in self.methods)
                    or self.paths not in path
                    or (self.when is not None and not self.when(headers or {}))):
                self._clean = max(0, self._clean - 1)
                return None
            if draw >= self.share or (self.limit is not None and self.faults >= self.limit):
                return None
            kinds = [k for k in self.kinds if k != "stall" or has_body or method == "GET"]
            if not kinds:
                return None
            kind = kinds[int(pick * len(kinds))]
            self.counts[kind] += 1
            self._clean = self.clean_after
            self.log.append(f"{method} {path.split('?')[0]} -> {kind}")
            return kind

    def summary(self) -> str:
        kinds = ", ".join(f"{kind} {self.counts[kind]}" for kind in KINDS if self.counts[kind])
        return f"{self.faults} faults in {self.requests} requests ({kinds or 'none'})"


class _Server(http.server.ThreadingHTTPServer):
    """Keeps its open connections: the engine keeps them alive, and on close they are shut
    down so their handler threads end with the proxy (a later test may fork, see
    tasks/prefetch.py, and forks only when no other thread runs)."""

    daemon_threads = True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.connections: dict[socket.socket, threading.Thread] = {}
        self._connections_lock = threading.Lock()

    def process_request_thread(self, request, client_address) -> None:
        with self._connections_lock:
            self.connections[request] = threading.current_thread()
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._connections_lock:
                self.connections.pop(request, None)

    def server_close(self) -> None:
        super().server_close()
        with self._connections_lock:
            open_now = list(self.connections.items())
        for connection, thread in open_now:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            thread.join(timeout=10)  # a stalled answer ends within its stall

    def handle_error(self, request, client_address) -> None:
        """A client that hangs up on a fault is the point, not an error worth a traceback."""


def _reset(connection: socket.socket) -> None:
    """Close with SO_LINGER 0: the kernel sends RST instead of FIN."""
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    connection.close()


def _handler(proxy: FaultProxy):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def handle_one_request(self) -> None:
            """A TLS hello (Go clients try HTTPS first) is answered at once with a plain
            "HTTP/1.0 400", which they read as "server gave HTTP response to HTTPS client" and
            retry over HTTP; read as a request line, it could block until a newline comes."""
            try:
                first = self.rfile.peek(1)[:1]
            except OSError:
                first = b""
            if first == b"\x16":
                self.wfile.write(b"HTTP/1.0 400 Bad Request\r\nConnection: close\r\n\r\n")
                self.close_connection = True
                return
            super().handle_one_request()

        def log_message(self, *args) -> None:
            pass

        def _body(self, limit: int | None = None) -> bytes:
            """The request body (Content-Length or chunked), or its first ``limit`` bytes."""
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        break
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                    if limit is not None and sum(map(len, chunks)) >= limit:
                        break
                return b"".join(chunks)
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length if limit is None else min(limit, length))

        def _has_body(self) -> bool:
            return (int(self.headers.get("Content-Length") or 0) > 0
                    or self.headers.get("Transfer-Encoding", "").lower() == "chunked")

        def _forward(self, body: bytes) -> tuple[int, str, list, bytes]:
            """The request as the client sent it, repeated headers kept (Go clients send one
            Accept per manifest type; the registry picks the format from all of them)."""
            upstream = http.client.HTTPConnection(*proxy.upstream, timeout=60)
            try:
                upstream.putrequest(self.command, self.path, skip_host=True,
                                    skip_accept_encoding=True)
                for name, value in self.headers.items():
                    if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                        upstream.putheader(name, value)
                if body or self.command not in ("GET", "HEAD", "DELETE"):
                    upstream.putheader("Content-Length", str(len(body)))
                upstream.endheaders(body or None)
                response = upstream.getresponse()
                return response.status, response.reason, response.getheaders(), response.read()
            finally:
                upstream.close()

        def _answer(self, status: int, reason: str, headers: list, body: bytes,
                    half: bool = False) -> None:
            self.send_response_only(status, reason)
            for name, value in headers:
                if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                    self.send_header(name, value)
            length = dict((k.lower(), v) for k, v in headers).get("content-length", len(body))
            self.send_header("Content-Length", str(length if self.command == "HEAD"
                                                   else len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body[: len(body) // 2] if half else body)
            self.wfile.flush()

        def _fail(self, status: int) -> None:
            text = f"{status} injected by the test's fault proxy\n".encode()
            self.send_response_only(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(text)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(text)
            self.close_connection = True

        def _stall_and_reset(self) -> None:
            self.wfile.flush()
            time.sleep(proxy.stall_seconds)
            self.close_connection = True
            _reset(self.connection)

        def _handle(self) -> None:
            has_body = self._has_body()
            fault = proxy.choose(self.command, self.path, has_body, self.headers)
            if fault == "stall" and has_body:
                self._body(limit=max(1, int(self.headers.get("Content-Length") or 2) // 2))
                return self._stall_and_reset()
            body = self._body()
            if fault in ("500", "503"):
                return self._fail(int(fault))
            try:
                status, reason, headers, answer = self._forward(body)
            except OSError:
                return self._fail(502)
            if fault == "reset":
                self.close_connection = True
                return _reset(self.connection)
            if fault == "stall":
                self._answer(status, reason, headers, answer, half=True)
                return self._stall_and_reset()
            self._answer(status, reason, headers, answer)

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    return Handler
