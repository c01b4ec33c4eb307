"""The embedded broker against hostile peers on 127.0.0.1: foreign web pages (Origin), peers
that connect and say nothing, too many connections, consumers that stop reading, and a
broker started beyond loopback without logins."""

from __future__ import annotations

import contextlib
import io
import logging
import socket
import threading
import time
from collections.abc import Callable

import pytest

import stompws
from stompws.testing import Broker
from stompws.testing.cli import build_parser, run_broker

from ..support.process import settle
from .support import WAIT, RawPeer


def _handshake(port: int, origin: str | None, host: str | None = None) -> int:
    """The HTTP status a WebSocket upgrade request with this Origin gets."""
    lines = [
        "GET /ws HTTP/1.1",
        f"Host: {host or f'127.0.0.1:{port}'}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
        "Sec-WebSocket-Protocol: v12.stomp",
    ]
    if origin is not None:
        lines.append(f"Origin: {origin}")
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        answer = b""
        while b"\r\n" not in answer:
            chunk = sock.recv(4096)
            assert chunk, "the broker closed without an HTTP answer"
            answer += chunk
    return int(answer.split(b" ", 2)[1])


# -- Origin ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "origin",
    ["http://evil.example", "null", "http://localhost:3000", "https://attacker.test:15674"],
)
def test_a_foreign_origin_is_refused(broker: Broker, origin: str) -> None:
    assert broker.ws_port is not None
    assert _handshake(broker.ws_port, origin) == 403


def test_a_rebound_dns_name_naming_the_broker_is_refused(broker: Broker) -> None:
    # A page on attacker.test:PORT whose name was rebound to 127.0.0.1 sends an Origin
    # that matches its Host header.
    port = broker.ws_port
    assert port is not None
    assert _handshake(port, f"http://attacker.test:{port}", f"attacker.test:{port}") == 403


def test_requests_without_origin_or_naming_the_broker_are_accepted(broker: Broker) -> None:
    port = broker.ws_port
    assert port is not None
    assert _handshake(port, None) == 101
    assert _handshake(port, f"http://127.0.0.1:{port}") == 101
    assert _handshake(port, f"http://localhost:{port}", f"localhost:{port}") == 101


def test_allowed_origins_are_accepted(brokers: Callable[..., Broker]) -> None:
    broker = brokers(tcp=False, allowed_origins=["http://localhost:3000"])
    assert broker.ws_port is not None
    assert _handshake(broker.ws_port, "http://localhost:3000") == 101
    assert _handshake(broker.ws_port, "http://localhost:3001") == 403


def test_our_client_still_connects_over_websocket(broker: Broker) -> None:
    with stompws.Client(broker.ws_url, heartbeats=(0, 0), connect_timeout=WAIT) as client:
        assert client.session is not None


# -- CONNECT deadline ------------------------------------------------------------------------


@pytest.mark.parametrize("sent", [b"", b"CONNECT\naccept-version:1.2\n"], ids=["nothing", "part"])
def test_a_peer_without_a_complete_connect_is_closed(
    brokers: Callable[..., Broker], sent: bytes
) -> None:
    broker = brokers(websocket=False, connect_timeout=0.5)
    peer = RawPeer(broker.tcp_url)
    try:
        peer.send(sent) if sent else None
        started = time.monotonic()
        error = peer.frame(timeout=WAIT)
        assert error is not None and error.command == "ERROR", error
        assert error.headers["message"] == "CONNECT timeout"
        assert peer.closed(timeout=WAIT)
        assert time.monotonic() - started < 3.0
    finally:
        peer.close()


@pytest.mark.process_state
def test_idle_sockets_give_their_threads_back(brokers: Callable[..., Broker]) -> None:
    """Process state: counts every thread of the process."""
    broker = brokers(connect_timeout=0.5)
    assert broker.ws_port is not None and broker.tcp_port is not None
    settle()  # no earlier test's thread may end inside the count and hide one held here
    before = threading.active_count()
    socks = [
        socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        for port in [broker.tcp_port] * 25 + [broker.ws_port] * 25
    ]
    try:
        deadline = time.monotonic() + WAIT
        while threading.active_count() > before and time.monotonic() < deadline:
            # Each peer is closed by the broker: reading sees the end (or the ERROR first).
            for sock in socks:
                sock.settimeout(0.01)
                with contextlib.suppress(TimeoutError, OSError):
                    sock.recv(65536)
        assert threading.active_count() <= before, (
            f"{threading.active_count() - before} threads still held by 50 idle sockets"
        )
    finally:
        for sock in socks:
            sock.close()


# -- connection cap --------------------------------------------------------------------------


def test_the_connection_past_the_cap_is_refused_at_once(
    brokers: Callable[..., Broker], raw: Callable[..., RawPeer]
) -> None:
    broker = brokers(max_connections=3)
    for _ in range(3):
        raw(broker.tcp_url).connect()
    broker.wait_for_connections(3)
    started = time.monotonic()
    extra = raw(broker.tcp_url)
    assert extra.closed(timeout=WAIT)
    assert time.monotonic() - started < 1.0
    assert broker.ws_port is not None
    assert _handshake(broker.ws_port, None) == 503
    assert len(broker.connections) == 3


def test_a_slot_is_free_again_when_a_connection_ends(
    brokers: Callable[..., Broker], raw: Callable[..., RawPeer]
) -> None:
    broker = brokers(max_connections=1, websocket=False)
    first = raw(broker.tcp_url)
    first.connect()
    first.send_frame("DISCONNECT")
    assert first.closed()
    # The slot is given back when the connection is unregistered, just after the close.
    assert broker._hub.wait(lambda live: not live, WAIT)
    raw(broker.tcp_url).connect()


# -- a consumer that does not read -----------------------------------------------------------


def test_a_consumer_that_stops_reading_is_disconnected(brokers: Callable[..., Broker]) -> None:
    broker = brokers(websocket=False, max_outbox_bytes=1024 * 1024)
    consumer = socket.socket()
    consumer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    consumer.settimeout(WAIT)
    consumer.connect(("127.0.0.1", broker.tcp_port or 0))
    try:
        consumer.sendall(b"CONNECT\naccept-version:1.2\n\n\x00")
        consumer.sendall(b"SUBSCRIBE\nid:0\ndestination:/topic/flood\nreceipt:r\n\n\x00")
        got = b""
        while b"receipt-id:r" not in got:
            got += consumer.recv(4096)
        # From here on it reads nothing.
        with stompws.Client(broker.tcp_url, heartbeats=(0, 0), connect_timeout=WAIT) as producer:
            body = b"x" * 65536
            for _ in range(200):  # 12.5 MiB, far past the kernel's buffers and the bound
                producer.send("/topic/flood", body)
            producer.send("/queue/alive", b"still served", receipt=True).wait(WAIT)  # type: ignore[union-attr]
            broker.wait_for_connections(1, timeout=WAIT)  # only the producer is left
        # And its socket is closed: what the kernel still holds, then the end.
        deadline = time.monotonic() + WAIT
        ended = False
        while not ended and time.monotonic() < deadline:
            try:
                ended = not consumer.recv(65536)
            except ConnectionResetError:
                ended = True
        assert ended
    finally:
        consumer.close()


# -- beyond loopback -------------------------------------------------------------------------


def test_listening_beyond_loopback_without_users_warns(caplog: pytest.LogCaptureFixture) -> None:
    # 192.0.2.1 (TEST-NET-1) is not ours: binding fails, after the warning, and nothing
    # ever listens beyond this machine.
    with (
        caplog.at_level(logging.WARNING, "stompws.testing"),
        pytest.raises(OSError, match="assign"),
    ):
        Broker("192.0.2.1").start()
    assert any("beyond this machine" in r.getMessage() for r in caplog.records)


def test_loopback_or_users_do_not_warn(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "stompws.testing"):
        with pytest.raises(OSError, match="assign"):
            Broker("192.0.2.1", users={"a": "b"}).start()
        with Broker("127.0.0.1"):
            pass
    assert not any("beyond this machine" in r.getMessage() for r in caplog.records)


# -- the command line ------------------------------------------------------------------------


class _Out(io.StringIO):
    """The broker command's output; ``ready`` is set once it printed its URLs."""

    def __init__(self) -> None:
        super().__init__()
        self.ready = threading.Event()

    def write(self, text: str) -> int:
        written = super().write(text)
        if "press Ctrl-C" in self.getvalue():
            self.ready.set()
        return written


def test_the_broker_command_takes_the_new_limits() -> None:
    args = build_parser().parse_args(
        [
            *("--port", "0", "--tcp-port", "0", "--allow-origin", "http://localhost:3000"),
            # Room for the accepted handshake's connection, which may not be over yet.
            *("--connect-timeout", "0.5", "--max-connections", "3"),
        ]
    )
    assert args.max_connections == 3
    out, stop = _Out(), threading.Event()
    runner = threading.Thread(target=run_broker, args=(args,), kwargs={"out": out, "stop": stop})
    runner.start()
    try:
        assert out.ready.wait(WAIT), out.getvalue()
        urls = [line.split()[-1] for line in out.getvalue().splitlines() if "listening" in line]
        ws_port = int(urls[0].rsplit(":", 1)[1].split("/")[0])
        assert _handshake(ws_port, "http://localhost:3000") == 101
        assert _handshake(ws_port, "http://localhost:3001") == 403
        peer = RawPeer(urls[1])
        try:
            error = peer.frame(timeout=WAIT)  # sends nothing: the 0.5 s deadline ends it
            assert error is not None and error.headers["message"] == "CONNECT timeout"
        finally:
            peer.close()
    finally:
        stop.set()
        runner.join(WAIT)
    assert not runner.is_alive()


def test_refusals_at_the_cap_warn_once(
    brokers: Callable[..., Broker],
    raw: Callable[..., RawPeer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = brokers(max_connections=1, websocket=False)
    raw(broker.tcp_url).connect()
    with caplog.at_level(logging.INFO, "stompws.testing"):
        for _ in range(5):
            assert raw(broker.tcp_url).closed()
    refusals = [r for r in caplog.records if "refusing TCP" in r.getMessage()]
    assert [r.levelno for r in refusals] == [logging.WARNING] + [logging.INFO] * 4


def test_a_silent_websocket_peer_is_closed_too(
    brokers: Callable[..., Broker], raw: Callable[..., RawPeer]
) -> None:
    broker = brokers(tcp=False, connect_timeout=0.5)
    peer = raw(broker.ws_url)  # the handshake done, then nothing
    error = peer.frame(timeout=WAIT)
    assert error is not None and error.headers["message"] == "CONNECT timeout"
    assert peer.closed(timeout=WAIT)


def test_a_websocket_consumer_that_stops_reading_is_disconnected(
    brokers: Callable[..., Broker], raw: Callable[..., RawPeer]
) -> None:
    broker = brokers(max_outbox_bytes=1024 * 1024)
    consumer = raw(broker.ws_url)
    consumer.ws.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    consumer.connect()
    consumer.send_frame("SUBSCRIBE", {"id": "0", "destination": "/topic/flood", "receipt": "r"})
    consumer.expect("RECEIPT")
    with stompws.Client(broker.tcp_url, heartbeats=(0, 0), connect_timeout=WAIT) as producer:
        for _ in range(200):
            producer.send("/topic/flood", b"x" * 65536)
        receipt = producer.send("/queue/alive", b"", receipt=True)
        assert receipt is not None
        receipt.wait(WAIT)
        broker.wait_for_connections(1, timeout=WAIT)
