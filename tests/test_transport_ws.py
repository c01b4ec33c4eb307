"""WebSocketTransport around the codec, on a socket pair: what it writes back (pongs, one
close), and how the connection's end reads."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from stompws.errors import ConnectionClosed, ProtocolError
from stompws.sockets import Stream
from stompws.transport import parse_url
from stompws.ws_framing import CLOSE, PING, PONG, TEXT
from stompws.ws_transport import WebSocketTransport

from .test_ws_framing import decode_client_frame, server_frame

Pair = tuple[WebSocketTransport, socket.socket]
URL = "ws://127.0.0.1/ws"


@pytest.fixture
def pair() -> Iterator[Pair]:
    a, b = socket.socketpair()
    b.settimeout(5)
    t = WebSocketTransport(parse_url(URL), Stream(a, write_timeout=5, where=URL), "v12.stomp")
    yield t, b
    t.close()
    b.close()


def read_client_frame(sock: socket.socket) -> tuple[int, bytes]:
    def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            assert chunk
            data += chunk
        return data

    head = exactly(2)
    n = head[1] & 0x7F
    extra = exactly(2 if n == 126 else 8 if n == 127 else 0)
    length = int.from_bytes(extra, "big") if extra else n
    return decode_client_frame(head + extra + exactly(4 + length))


def test_send_is_one_message(pair: Pair) -> None:
    t, peer = pair
    t.send(b"SEND\n\n\x00")
    assert read_client_frame(peer) == (TEXT, b"SEND\n\n\x00")


def test_ping_is_answered_and_close_is_raised_after_data(pair: Pair) -> None:
    t, peer = pair
    peer.sendall(
        server_frame(PING, b"hi")
        + server_frame(TEXT, b"data")
        + server_frame(CLOSE, (1000).to_bytes(2, "big") + b"bye")
    )
    assert t.recv() == b"data"
    with pytest.raises(ConnectionClosed) as info:
        t.recv()
    assert info.value.code == 1000 and "bye" in str(info.value)
    assert read_client_frame(peer) == (PONG, b"hi")
    assert read_client_frame(peer) == (CLOSE, (1000).to_bytes(2, "big"))
    t.close_gracefully()  # only one close goes out
    peer.settimeout(0.2)
    with pytest.raises(socket.timeout):
        peer.recv(10)


def test_a_pong_that_could_not_go_out_goes_before_the_next_message(pair: Pair) -> None:
    t, peer = pair
    with t._write_lock:  # another thread is writing: the reader must not wait for it
        peer.sendall(server_frame(PING, b"p") + server_frame(TEXT, b"x"))
        assert t.recv() == b"x"
    t.send(b"after")
    assert read_client_frame(peer) == (PONG, b"p")
    assert read_client_frame(peer) == (TEXT, b"after")


def test_a_framing_error_ends_with_close_1002(pair: Pair) -> None:
    t, peer = pair
    peer.sendall(bytes((0x83, 0)))
    with pytest.raises(ProtocolError, match=r"broke WebSocket framing: .*unknown opcode"):
        t.recv()
    assert read_client_frame(peer) == (CLOSE, (1002).to_bytes(2, "big"))


def test_eof_without_close(pair: Pair) -> None:
    t, peer = pair
    peer.shutdown(socket.SHUT_WR)
    with pytest.raises(ConnectionClosed, match="without a WebSocket close"):
        t.recv()


def test_after_abort_recv_and_send_raise(pair: Pair) -> None:
    t, _ = pair
    t.abort()
    with pytest.raises(ConnectionClosed, match="aborted"):
        t.recv()
    with pytest.raises(ConnectionClosed, match="aborted"):
        t.send(b"x")


def test_a_ping_during_a_write_is_answered_when_that_write_ends(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With heart-beats off there may be no "next write": the writer that held the lock when
    # the ping came must send the pong itself once its own write is done.
    t, peer = pair
    writing, finish = threading.Event(), threading.Event()
    real_send = t._stream.send

    def slow_send(data: bytes, timeout: float | None = None) -> None:
        if not writing.is_set():
            writing.set()
            assert finish.wait(5)
        real_send(data, timeout)

    monkeypatch.setattr(t._stream, "send", slow_send)
    writer = threading.Thread(target=t.send, args=(b"SEND\n\n\x00",))
    writer.start()
    assert writing.wait(5)
    peer.sendall(server_frame(PING, b"late") + server_frame(TEXT, b"x"))
    assert t.recv() == b"x"  # the reader saw the ping and could not answer it
    finish.set()
    writer.join(5)
    assert read_client_frame(peer) == (TEXT, b"SEND\n\n\x00")
    assert read_client_frame(peer) == (PONG, b"late")
