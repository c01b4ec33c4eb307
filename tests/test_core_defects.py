"""Red tests for the defects found in the client core's review, against the scripted peer.

Each test that fails on today's code is marked ``xfail(strict=True)`` with the defect's
number: the suite stays green, and the mark must go when the defect is fixed (a strict xfail
that passes fails the run). Every assertion message carries the bytes the client sent.

The first tests check the scripted peer itself (tests/support/peer.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

import pytest

import stompws
from stompws import Frame

from .support.peer import PeerConnection, ScriptedPeer, TransportName

T = TypeVar("T")

BIG_BODY = b"x" * (32 * 1024 * 1024)  # more than every socket buffer between the two ends
SMALL_RCVBUF = 4096


class Background(Generic[T]):
    """Runs ``call`` on a test thread (``test-*``, not counted as a client thread)."""

    def __init__(self, call: Callable[[], T], name: str) -> None:
        self._call = call
        self.value: T | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=f"test-{name}", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.value = self._call()
        except BaseException as error:
            self.error = error

    def done(self, timeout: float) -> bool:
        self.thread.join(timeout)
        return not self.thread.is_alive()

    def result(self, timeout: float) -> T:
        if not self.done(timeout):
            raise AssertionError(f"{self.thread.name} still running after {timeout:g} s")
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]


class Harness:
    """Peers, clients and test threads of one test, ended in an order that frees every
    client thread even when the test failed half-way: the peers reset their connections
    first (a write blocked on a peer that stopped reading fails then), then the clients
    disconnect, then the client's threads are waited for."""

    def __init__(self) -> None:
        self.peers: list[ScriptedPeer] = []
        self.clients: list[stompws.Client] = []
        self.threads: list[Background[Any]] = []
        self._before = {thread.ident for thread in threading.enumerate()}

    def peer(self, transport: TransportName = "tcp", **options: Any) -> ScriptedPeer:
        peer = ScriptedPeer(transport, **options)
        self.peers.append(peer)
        return peer

    def client(self, peer: ScriptedPeer, **options: Any) -> stompws.Client:
        settings: dict[str, Any] = {
            "heartbeats": (0, 0),
            "ssl_context": peer.ssl_context_for_client(),
            "connect_timeout": 2.0,
            "write_timeout": 2.0,
            "receipt_timeout": 2.0,
        }
        settings.update(options)
        client = stompws.Client(peer.url, **settings)
        self.clients.append(client)
        return client

    def background(self, call: Callable[[], T], name: str = "call") -> Background[T]:
        task = Background(call, name)
        self.threads.append(task)
        return task

    def connect(
        self, peer: ScriptedPeer, client: stompws.Client, **connected: str
    ) -> PeerConnection:
        """``client.connect()`` answered by the peer's next connection."""
        task = self.background(client.connect, "connect")
        conn = peer.accept()
        conn.answer_connect(**connected)
        task.result(2.0)
        return conn

    def close(self) -> None:
        for peer in self.peers:
            peer.close()
        for client in self.clients:
            self.background(lambda c=client: c.disconnect(timeout=1.0), "teardown")
        deadline = time.monotonic() + 5.0
        for task in self.threads:
            task.done(max(deadline - time.monotonic(), 0.0))
        for thread in threading.enumerate():
            if thread.name.startswith("stompws-") and thread.ident not in self._before:
                thread.join(max(deadline - time.monotonic(), 0.0))


@pytest.fixture
def harness() -> Iterator[Harness]:
    h = Harness()
    try:
        yield h
    finally:
        h.close()


class Recorder(stompws.Listener):
    """Records listener calls; ``wait_for`` waits for one."""

    def __init__(self) -> None:
        self.condition = threading.Condition()
        self.events: list[tuple[str, Any]] = []

    def _record(self, name: str, value: Any) -> None:
        with self.condition:
            self.events.append((name, value))
            self.condition.notify_all()

    def on_connected(self, frame: Frame) -> None:
        self._record("connected", frame)

    def on_message(self, frame: Frame) -> None:
        self._record("message", frame)

    def on_error(self, frame: Frame) -> None:
        self._record("error", frame)

    def on_receipt(self, frame: Frame) -> None:
        self._record("receipt", frame)

    def on_disconnected(self, reason: BaseException | None) -> None:
        self._record("disconnected", reason)

    def values(self, name: str) -> list[Any]:
        with self.condition:
            return [value for event, value in self.events if event == name]

    def wait_for(self, name: str, count: int = 1, timeout: float = 2.0) -> list[Any]:
        deadline = time.monotonic() + timeout
        with self.condition:
            while len(found := [v for e, v in self.events if e == name]) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"{count} x on_{name} expected within {timeout:g} s; heard {self.events}"
                    )
                self.condition.wait(remaining)
            return found


def client_threads() -> list[threading.Thread]:
    return [
        t
        for t in threading.enumerate()
        if t.name.startswith("stompws-") and not t.name.startswith("stompws-testbroker-")
    ]


# -- the scripted peer itself ------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["tcp", "tls", "ws", "wss"])
def test_peer_round_trip(harness: Harness, transport: TransportName) -> None:
    peer = harness.peer(transport)
    client = harness.client(peer)
    conn = harness.connect(peer, client)
    subscription = client.subscribe("/queue/a", id="s1")
    assert conn.expect("SUBSCRIBE").headers["id"] == "s1"
    conn.message("/queue/a", "s1", "hello")
    assert subscription.get(timeout=2).body == b"hello"
    client.send("/queue/b", b"\x00binary\xff")
    sent = conn.expect("SEND")
    assert sent.body == b"\x00binary\xff", conn.describe()
    task = harness.background(lambda: client.disconnect(timeout=2), "disconnect")
    conn.receipt(conn.expect("DISCONNECT").headers["receipt"])
    task.result(2.0)
    assert conn.wait_closed(2.0), conn.describe()
    assert conn.subscribe_count("s1") == 1
    assert conn.received_bytes.startswith((b"CONNECT\n", b"STOMP\n"))
    if transport in ("ws", "wss"):
        assert conn.request_headers["sec-websocket-protocol"].startswith("v12.stomp")


@pytest.mark.parametrize("transport", ["ws", "wss"])
def test_peer_splits_frames_across_websocket_messages(
    harness: Harness, transport: TransportName
) -> None:
    peer = harness.peer(transport)
    client = harness.client(peer)
    conn = harness.connect(peer, client)
    subscription = client.subscribe("/queue/a", id="s1")
    conn.expect("SUBSCRIBE")
    one = conn.message_bytes("/queue/a", "s1", "one")
    two = conn.message_bytes("/queue/a", "s1", b"two\xff")
    three = conn.message_bytes("/queue/a", "s1", "three")
    conn.send_raw(one, split_at=[3, 20])  # three text messages
    conn.send_raw(two + three, binary=True, split_at=[len(two) - 1], fragmented=True)
    bodies = [subscription.get(timeout=2).body for _ in range(3)]
    assert bodies == [b"one", b"two\xff", b"three"], conn.describe()


def test_peer_reset_is_a_lost_connection(harness: Harness) -> None:
    peer = harness.peer("tcp")
    client = harness.client(peer)
    recorder = Recorder()
    client.add_listener(recorder)
    conn = harness.connect(peer, client)
    conn.reset()
    [reason] = recorder.wait_for("disconnected")
    assert isinstance(reason, stompws.ConnectionClosed), reason
    assert "reset" in str(reason).lower() or "lost" in str(reason).lower(), reason


def test_peer_answers_client_and_counts(harness: Harness) -> None:
    peer = harness.peer("ws")
    client = harness.client(peer)
    conn = harness.connect(peer, client)
    conn.ping(b"hi")
    assert conn.expect_pong() == b"hi"
    receipt = client.send("/queue/a", "x", receipt=True)
    assert receipt is not None
    conn.receipt(conn.expect("SEND").headers["receipt"])
    assert receipt.wait(2).command == "RECEIPT"
    assert conn.count("SEND", destination="/queue/a") == 1
    assert peer.accepted_count == 1
