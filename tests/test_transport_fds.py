"""readable_now() on a socket whose descriptor is above 1023, where select() refuses to go.

Process state: it raises the process's descriptor limit and fills the descriptor table
below 1024 for the test's duration (both put back after it)."""

from __future__ import annotations

import contextlib
import resource
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from stompws.transport import HandshakeGuard, Transport, open_transport, parse_url

FD_SETSIZE = 1024


@pytest.fixture
def many_open_files() -> Iterator[None]:
    """Enough descriptors open that the next socket's is at least FD_SETSIZE."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = FD_SETSIZE + 64
    if soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is below {wanted}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    fillers: list[socket.socket] = []
    try:
        while not fillers or fillers[-1].fileno() < FD_SETSIZE:
            fillers.append(socket.socket())
        yield
    finally:
        for filler in fillers:
            filler.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _wait_readable(transport: Transport, timeout: float) -> bool:
    """Whether readable_now() became True within ``timeout`` (the peer's bytes travel)."""
    deadline = time.monotonic() + timeout
    ready = threading.Event()
    while time.monotonic() < deadline:
        if transport.readable_now():
            return True
        ready.wait(0.01)  # bounded pacing of the check, not synchronisation
    return False


@pytest.mark.process_state
@pytest.mark.usefixtures("many_open_files")
def test_readable_now_above_fd_1023() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    with contextlib.closing(listener):
        url = f"stomp://127.0.0.1:{listener.getsockname()[1]}"
        transport = open_transport(
            parse_url(url),
            guard=HandshakeGuard(10),
            ssl_context=None,
            ws_headers=None,
            versions=("1.2",),
            write_timeout=5,
        )
        try:
            sock = getattr(getattr(transport, "_stream", None), "sock", None)
            sock = sock or transport._sock  # type: ignore[attr-defined]
            assert sock.fileno() >= FD_SETSIZE
            conn, _ = listener.accept()
            with conn:
                assert not transport.readable_now()
                conn.sendall(b"\n")
                assert _wait_readable(transport, 5), "bytes wait unread, readable_now() is False"
                assert transport.recv() == b"\n"
                assert transport.readable_now(), "read but not handed over: still unheard"
                transport.read_handled()
                assert not transport.readable_now()
        finally:
            transport.close()
