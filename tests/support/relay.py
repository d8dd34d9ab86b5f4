"""A TCP relay: listen on one address, pass every connection on to another (test support).

A network namespace has its own loopback, so a dockerd inside one cannot reach the test
registry at 127.0.0.1:5000. One relay inside the namespace (its 127.0.0.1:5000, which docker
treats as insecure by default) and one on this side (the bridge's 10.77.0.1:5000) carry it
there. Run as ``python3 -m tests.support.relay LISTEN_HOST:PORT TARGET_HOST:PORT`` inside a
namespace, or start() in a thread of the test's own process.
"""

import contextlib
import socket
import sys
import threading


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    """Copy until either side closes, then close both (the other direction's copy ends too)."""
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()


def _serve(listener: socket.socket, target: tuple[str, int]) -> None:
    while True:
        try:
            client, _ = listener.accept()
        except OSError:  # the listener was closed: stop
            return
        try:
            upstream = socket.create_connection(target, timeout=10)
            upstream.settimeout(None)
        except OSError:
            client.close()
            continue
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


def _address(text: str) -> tuple[str, int]:
    host, port = text.rsplit(":", 1)
    return host, int(port)


def start(listen: str, target: str) -> socket.socket:
    """Relay ``listen`` → ``target`` from a daemon thread; close the returned socket to stop."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(_address(listen))
    listener.listen(64)
    threading.Thread(target=_serve, args=(listener, _address(target)), daemon=True).start()
    return listener


if __name__ == "__main__":
    listening = start(sys.argv[1], sys.argv[2])
    print(f"relaying {sys.argv[1]} -> {sys.argv[2]}", flush=True)
    threading.Event().wait()
