"""The fault proxy itself, in front of a local echo server: no broker needed."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from .proxy import FaultProxy


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock: socket.socket = self.request
        try:
            while data := sock.recv(65536):
                sock.sendall(data)
        except ConnectionError:
            # The proxy cut the link with a reset: what the tests ask of it, not a fault of
            # the echo (socketserver would print its traceback between the tests' output).
            return


class _EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    block_on_close = True
    allow_reuse_address = True


@pytest.fixture
def echo() -> Iterator[tuple[str, int]]:
    server = _EchoServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="echo-server"
    )
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield str(host), int(port)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def proxy(echo: tuple[str, int]) -> Iterator[FaultProxy]:
    with FaultProxy(*echo) as started:
        yield started


def connect(proxy: FaultProxy) -> socket.socket:
    sock = socket.create_connection((proxy.host, proxy.port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_exactly(sock: socket.socket, size: int, timeout: float = 5.0) -> tuple[bytes, int]:
    """``size`` bytes and the number of recv calls they took."""
    sock.settimeout(timeout)
    data = b""
    calls = 0
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        calls += 1
        if not chunk:
            raise AssertionError(f"end of stream after {data!r}")
        data += chunk
    return data, calls


def test_forwards_both_ways_and_records() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with FaultProxy("127.0.0.1", port) as proxy:
            assert (
                proxy.url_for("ws://u:p@localhost:15674/ws")
                == f"ws://u:p@127.0.0.1:{proxy.port}/ws"
            )
            with connect(proxy) as client:
                server.settimeout(5)
                upstream, _ = server.accept()
                with upstream:
                    client.sendall(b"ping")
                    assert read_exactly(upstream, 4)[0] == b"ping"
                    upstream.sendall(b"pong!")
                    assert read_exactly(client, 5)[0] == b"pong!"
                    record = proxy.wait_for_accepted(1)
                    assert (bytes(record.up), bytes(record.down)) == (b"ping", b"pong!")
                    # A half-close passes through, and the other direction goes on.
                    client.shutdown(socket.SHUT_WR)
                    assert upstream.recv(10) == b""
                    upstream.sendall(b"after")
                    assert read_exactly(client, 5)[0] == b"after"
                    upstream.close()
                    assert client.recv(10) == b""
                    assert record.closed.wait(5)
                    assert proxy.open_connections == 0
        names = [t.name for t in threading.enumerate() if t.name.startswith("faultproxy-")]
        assert names == []


def test_cut_closes_both_sides_and_new_connections_work(proxy: FaultProxy) -> None:
    with connect(proxy) as client, connect(proxy) as other:
        client.sendall(b"x")
        assert read_exactly(client, 1)[0] == b"x"
        proxy.wait_for_accepted(2)
        assert proxy.cut() == 2
        client.settimeout(5)
        other.settimeout(5)
        assert client.recv(10) == b""
        assert other.recv(10) == b""
    assert proxy.open_connections == 0
    with connect(proxy) as again:
        again.sendall(b"y")
        assert read_exactly(again, 1)[0] == b"y"


def test_cut_with_reset(proxy: FaultProxy) -> None:
    with connect(proxy) as client:
        client.sendall(b"x")
        assert read_exactly(client, 1)[0] == b"x"
        proxy.cut(reset=True)
        client.settimeout(5)
        with pytest.raises(ConnectionResetError):
            client.recv(10)


def test_freeze_holds_everything_until_unfreeze(proxy: FaultProxy) -> None:
    with connect(proxy) as client:
        client.sendall(b"a")
        assert read_exactly(client, 1)[0] == b"a"
        proxy.freeze()
        client.sendall(b"held")
        client.settimeout(0.3)
        with pytest.raises(TimeoutError):
            client.recv(10)  # nothing passes while frozen (0.3 s is plenty on loopback)
        assert proxy.wait_for_accepted(1).up == b"a"
        proxy.unfreeze()
        assert read_exactly(client, 4)[0] == b"held"


def test_freeze_applies_to_new_connections_and_holds_the_end(proxy: FaultProxy) -> None:
    proxy.freeze()
    with connect(proxy) as client:
        client.sendall(b"early")
        client.shutdown(socket.SHUT_WR)  # the end of stream is held too
        record = proxy.wait_for_accepted(1)
        client.settimeout(0.3)
        with pytest.raises(TimeoutError):
            client.recv(10)
        assert not record.closed.is_set()
        proxy.unfreeze()
        assert read_exactly(client, 5)[0] == b"early"
        client.settimeout(5)
        assert client.recv(10) == b""
        assert record.closed.wait(5)


def test_delay_adds_latency_per_chunk(proxy: FaultProxy) -> None:
    with connect(proxy) as client:
        proxy.delay(0.5)
        started = time.monotonic()
        client.sendall(b"slow")
        assert read_exactly(client, 4)[0] == b"slow"
        assert time.monotonic() - started >= 1.0  # delayed on the way out and back
        proxy.delay(0)
        started = time.monotonic()
        client.sendall(b"fast")
        assert read_exactly(client, 4)[0] == b"fast"
        # A delay still in force would take 1 s; anything under half that is "none", with
        # room for a loaded machine (0.2 s was not).
        assert time.monotonic() - started < 0.5


def test_trickle_forwards_byte_by_byte(proxy: FaultProxy) -> None:
    message = bytes(range(32, 96))
    with connect(proxy) as client:
        proxy.trickle(0.005)
        started = time.monotonic()
        client.sendall(message)
        data, calls = read_exactly(client, len(message))
        assert data == message
        assert calls > len(message) // 4  # arrives in many small pieces, not in one
        # Both ways trickle, overlapped: at least one pause per byte in all.
        assert time.monotonic() - started >= 0.005 * (len(message) - 1)
        proxy.trickle(None)
        proxy.trickle(0.005, direction="down")  # only on the way back
        client.sendall(message)
        data, calls = read_exactly(client, len(message))
        assert data == message and calls > len(message) // 4
        assert [bytes(record.up) for record in proxy.records] == [message * 2]


def test_refuse_and_accept_again(proxy: FaultProxy) -> None:
    with connect(proxy) as before:
        proxy.refuse()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((proxy.host, proxy.port), timeout=5)
        before.sendall(b"still open")
        assert read_exactly(before, 10)[0] == b"still open"
    proxy.accept()
    with connect(proxy) as after:
        after.sendall(b"z")
        assert read_exactly(after, 1)[0] == b"z"


def test_target_down_resets_the_connection() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens there
    with FaultProxy("127.0.0.1", port) as proxy:
        # The reset may come before connect() returns, or at the first read.
        with pytest.raises(ConnectionResetError):
            _connect_and_read(proxy)
        assert proxy.accepted == 0


def _connect_and_read(proxy: FaultProxy) -> bytes:
    with connect(proxy) as client:
        client.settimeout(5)
        return client.recv(10)
