"""The WebSocket handshake never follows a redirect: a 3xx is a ConnectError naming the
status and the Location, and nothing reaches the host it points to."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest

from stompws.errors import ConnectError, StompError
from stompws.transport import HandshakeGuard, open_transport, parse_url


class Redirector:
    """Answers every handshake on 127.0.0.1 with ``status`` and ``location``."""

    def __init__(self, status: int, location: str | None) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.status, self.location = status, location
        self.requests: list[bytes] = []
        self._conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._run, name="test-redirector", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with contextlib.suppress(OSError):  # the test closed the listener
            conn, _ = self.listener.accept()
            self._conns.append(conn)
            conn.settimeout(10)
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                request += chunk
            self.requests.append(request)
            head = f"HTTP/1.1 {self.status} Elsewhere\r\n"
            if self.location is not None:
                head += f"Location: {self.location}\r\n"
            conn.sendall(head.encode() + b"Content-Length: 0\r\n\r\n")

    def close(self) -> None:
        self.listener.close()
        for conn in self._conns:
            conn.close()
        self.thread.join(10)


@pytest.fixture
def elsewhere() -> Iterator[socket.socket]:
    """The host a redirect points to: it must never see a connection."""
    listener = socket.create_server(("127.0.0.1", 0))
    yield listener
    listener.close()


def _open(port: int) -> None:
    open_transport(
        parse_url(f"ws://127.0.0.1:{port}/ws"),
        guard=HandshakeGuard(3),
        ssl_context=None,
        ws_headers={"Authorization": "Bearer not-for-elsewhere"},
        versions=("1.2",),
        write_timeout=5,
    )


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_a_connect_error_and_is_not_followed(
    elsewhere: socket.socket, status: int
) -> None:
    location = f"ws://127.0.0.1:{elsewhere.getsockname()[1]}/elsewhere"
    redirector = Redirector(status, location)
    try:
        with pytest.raises(ConnectError) as caught:
            _open(redirector.port)
    finally:
        redirector.close()
    message = str(caught.value)
    assert f"HTTP {status}" in message and location in message, message
    assert "not followed" in message
    # Following happens inside open_transport: any connection would be queued by now.
    elsewhere.setblocking(False)
    with pytest.raises(BlockingIOError):
        elsewhere.accept()
    assert len(redirector.requests) == 1


def test_a_redirect_without_location(elsewhere: socket.socket) -> None:
    redirector = Redirector(302, None)
    try:
        with pytest.raises(ConnectError, match="HTTP 302 without a Location"):
            _open(redirector.port)
    finally:
        redirector.close()


@pytest.mark.parametrize(
    "location",
    ["ws://user:secret@127.0.0.1:1/x", "not a url at all", "http://" + "a" * 5000],
)
def test_whatever_the_location_says_only_a_stomp_error_escapes(location: str) -> None:
    redirector = Redirector(307, location)
    try:
        with pytest.raises(StompError) as caught:
            _open(redirector.port)
    finally:
        redirector.close()
    assert isinstance(caught.value, ConnectError)
    assert "secret" not in str(caught.value)
    assert len(str(caught.value)) < 500
