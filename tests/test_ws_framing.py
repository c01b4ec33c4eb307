"""Frame-level checks of stompws.ws_transport's own RFC 6455 reader and writer."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from websocket import ABNF

from stompws.errors import ConnectionClosed
from stompws.transport import parse_url
from stompws.ws_transport import WebSocketTransport


class Handshaken:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.subprotocol = "v12.stomp"

    def shutdown(self) -> None:
        self.sock.close()


def server_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    n = len(payload)
    first = (0x80 if fin else 0) | opcode
    if n < 126:
        head = bytes((first, n))
    elif n < 65536:
        head = bytes((first, 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((first, 127)) + n.to_bytes(8, "big")
    return head + payload


def read_client_frame(sock: socket.socket) -> tuple[int, bytes]:
    def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            assert chunk
            data += chunk
        return data

    b0, b1 = exactly(2)
    assert b0 & 0x80 and b1 & 0x80  # final and masked
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(exactly(2), "big")
    elif n == 127:
        n = int.from_bytes(exactly(8), "big")
    key = exactly(4)
    return b0 & 0x0F, ABNF.mask(key, exactly(n))


Pair = tuple[WebSocketTransport, socket.socket]


@pytest.fixture
def pair() -> Iterator[Pair]:
    a, b = socket.socketpair()
    t = WebSocketTransport(parse_url("ws://127.0.0.1/ws"), Handshaken(a))  # type: ignore[arg-type]
    yield t, b
    b.close()
    a.close()


@pytest.mark.parametrize("size", [0, 1, 125, 126, 1023, 1024, 65535, 65536, 300_000])
def test_send_round_trips(pair: Pair, size: Any) -> None:
    t, peer = pair
    data = os.urandom(size) if size % 2 else b"a" * size
    out: list[tuple[int, bytes]] = []
    th = threading.Thread(target=lambda: out.append(read_client_frame(peer)))
    th.start()
    t.send(data)
    th.join(5)
    opcode, payload = out[0]
    assert payload == data
    assert opcode == (1 if data.isascii() else 2) or size % 2


def test_recv_streams_split_fragmented_and_many(pair: Pair) -> None:
    t, peer = pair
    wire = (
        server_frame(1, b"CONNECTED\n\n\x00")
        + server_frame(1, b"MESS", fin=False)
        + server_frame(0, b"AGE\n\nx\x00")
        + server_frame(2, b"\n")
    )
    got = b""
    for i in range(len(wire)):  # one byte at a time
        peer.sendall(wire[i : i + 1])
    while len(got) < len(b"CONNECTED\n\n\x00MESSAGE\n\nx\x00\n"):
        got += t.recv()
    assert got == b"CONNECTED\n\n\x00MESSAGE\n\nx\x00\n"


def test_large_payload_streams(pair: Pair) -> None:
    t, peer = pair
    body = os.urandom(1 << 20)
    th = threading.Thread(target=lambda: peer.sendall(server_frame(2, body)))
    th.start()
    got = b""
    while len(got) < len(body):
        got += t.recv()
    th.join()
    assert got == body


def test_ping_is_answered_and_close_is_raised_after_data(pair: Pair) -> None:
    t, peer = pair
    peer.sendall(
        server_frame(9, b"hi")
        + server_frame(1, b"data")
        + server_frame(8, (1000).to_bytes(2, "big") + b"bye")
    )
    assert t.recv() == b"data"
    with pytest.raises(ConnectionClosed) as info:
        t.recv()
    assert info.value.code == 1000 and "bye" in str(info.value)
    assert read_client_frame(peer) == (0xA, b"hi")
    assert read_client_frame(peer) == (0x8, (1000).to_bytes(2, "big"))
    t.close_gracefully()  # only one close goes out
    peer.settimeout(0.2)
    with pytest.raises(socket.timeout):
        peer.recv(10)


@pytest.mark.parametrize(
    "bad",
    [
        bytes((0x81, 0x81, 1, 2, 3, 4, 0)),
        bytes((0xC1, 0)),
        bytes((0x83, 0)),
        bytes((0x09, 0)),
        bytes((0x89, 126, 0, 200)),
    ],
)
def test_protocol_violations_end_the_connection(pair: Pair, bad: Any) -> None:
    t, peer = pair
    peer.sendall(bad)
    with pytest.raises(ConnectionClosed, match="lost"):
        t.recv()


def test_eof_and_abort(pair: Pair) -> None:
    t, peer = pair
    peer.shutdown(socket.SHUT_WR)
    with pytest.raises(ConnectionClosed, match="without a WebSocket close"):
        t.recv()
