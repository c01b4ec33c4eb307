"""Ports on 127.0.0.1 for tests that need an address where nothing answers."""

from __future__ import annotations

import socket
import threading

_held: list[socket.socket] = []
_lock = threading.Lock()


def refusing_port() -> int:
    """A port on 127.0.0.1 that refuses every connection for the rest of the session.

    The socket is bound and never listens: a connect gets ECONNREFUSED, and no other
    process can take the port meanwhile (a port bound and released at once, the old way,
    could be taken by anything on the machine before the test connected to it)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    with _lock:
        _held.append(sock)
    port: int = sock.getsockname()[1]
    return port
