"""The WebSocket handshake against hostile HTTP answers: its size is bounded, and the
caller's Host and Origin replace the handshake's own (one of each on the wire)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from stompws.errors import ConnectError, ConnectTimeout
from stompws.transport import HandshakeGuard, open_transport, parse_url
from stompws.ws_handshake import MAX_RESPONSE_HEAD

WAIT = 10.0


class EndlessHeader:
    """Answers the upgrade with a status line and then one header line that never ends."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sent = 0
        self.request = b""
        self.thread = threading.Thread(target=self._run, name="test-endless", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with contextlib.suppress(OSError):  # the client gave up: what the test wants
            conn, _ = self.listener.accept()
            with conn:
                conn.settimeout(WAIT)
                while b"\r\n\r\n" not in self.request:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    self.request += chunk
                conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nX-Endless: ")
                filler = b"a" * 4096
                while self.sent < 64 * 1024 * 1024:
                    conn.sendall(filler)
                    self.sent += len(filler)

    def close(self) -> None:
        self.listener.close()
        self.thread.join(WAIT)


@pytest.fixture
def endless() -> Iterator[EndlessHeader]:
    peer = EndlessHeader()
    yield peer
    peer.close()


def test_an_endless_handshake_answer_fails_at_the_limit_not_the_deadline(
    endless: EndlessHeader,
) -> None:
    started = time.monotonic()
    with pytest.raises(ConnectError) as caught:
        open_transport(
            parse_url(f"ws://127.0.0.1:{endless.port}/ws"),
            guard=HandshakeGuard(WAIT),
            ssl_context=None,
            ws_headers=None,
            versions=("1.2",),
            write_timeout=5,
        )
    assert not isinstance(caught.value, ConnectTimeout), caught.value
    assert f"{MAX_RESPONSE_HEAD} bytes" in str(caught.value)
    assert time.monotonic() - started < WAIT / 2
