"""Heart-beats: negotiation, EOLs at the agreed rate, and silent clients closed."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

import stompws
from stompws import HEARTBEAT
from stompws.testing import Broker
from stompws.testing._session import negotiate_heartbeats, negotiate_version

from .support import WAIT, RawPeer, RawWsPeer

Raw = Callable[..., RawPeer]
Connect = Callable[..., stompws.Client]


@pytest.mark.parametrize(
    ("client", "broker", "header", "send_ms", "expect_ms"),
    [
        ((0, 0), None, (0, 0), 0, 0),
        ((1000, 500), None, (500, 1000), 500, 1000),  # follows the client
        ((1000, 500), (2000, 3000), (2000, 3000), 2000, 3000),  # the larger of each pair
        ((1000, 0), (2000, 300), (2000, 300), 0, 1000),  # the client wants no beats
        ((0, 400), (100, 100), (100, 100), 400, 0),  # the client sends none
        ((1000, 1000), (0, 0), (0, 0), 0, 0),  # the broker does neither
    ],
)
def test_heartbeat_negotiation(
    client: tuple[int, int],
    broker: tuple[int, int] | None,
    header: tuple[int, int],
    send_ms: int,
    expect_ms: int,
) -> None:
    assert negotiate_heartbeats(client, broker) == (header, send_ms, expect_ms)


@pytest.mark.parametrize(
    ("accept", "supported", "chosen"),
    [
        (None, ("1.0", "1.1", "1.2"), "1.0"),
        (None, ("1.1", "1.2"), None),
        ("1.0,1.1", ("1.0", "1.1", "1.2"), "1.1"),
        ("1.2, 1.1", ("1.0", "1.1", "1.2"), "1.2"),
        ("1.2,2.0", ("1.1",), None),
        ("1.1,1.2", ("1.1",), "1.1"),
    ],
)
def test_version_negotiation(accept: str | None, supported: tuple[str, ...], chosen: str) -> None:
    assert negotiate_version(accept, supported) == chosen


def count_heartbeats(peer: RawPeer, count: int) -> float:
    """Seconds it took to receive ``count`` heart-beats (and nothing else)."""
    start = time.monotonic()
    for _ in range(count):
        assert peer.next(WAIT) is HEARTBEAT
    return time.monotonic() - start


def test_the_broker_sends_heartbeats_at_the_agreed_rate(url: str, raw: Raw) -> None:
    peer = raw(url)
    connected = peer.connect(heart_beat="0,100")
    assert connected.headers["heart-beat"] == "100,0"
    elapsed = count_heartbeats(peer, 5)
    assert 0.35 < elapsed < 2.0


def test_each_heartbeat_is_its_own_websocket_message(broker: Broker) -> None:
    peer = RawWsPeer(broker.ws_url)
    try:
        peer.connect(heart_beat="0,50")
        peer.ws.settimeout(WAIT)
        for _ in range(3):
            assert peer.ws.recv() == "\n"
    finally:
        peer.close()


def test_a_configured_broker_rate_wins_when_slower(
    brokers: Callable[..., Broker], raw: Raw
) -> None:
    broker = brokers(heartbeats=(150, 0))
    peer = raw(broker.tcp_url)
    connected = peer.connect(heart_beat="0,50")
    assert connected.headers["heart-beat"] == "150,0"
    assert count_heartbeats(peer, 3) > 0.35  # every 150 ms, not every 50


def test_a_silent_client_gets_error_and_is_closed(url: str, raw: Raw) -> None:
    peer = raw(url)
    peer.connect(heart_beat="100,0")  # promises a heart-beat every 100 ms, then sends none
    start = time.monotonic()
    error = peer.expect("ERROR")
    assert error.headers["message"] == "heart-beat timeout"
    assert peer.closed()
    assert time.monotonic() - start >= 0.15  # tolerance 2.0 × 100 ms, measured from CONNECTED


def test_a_client_that_sends_heartbeats_stays_connected(
    broker: Broker, url: str, clients: Connect
) -> None:
    beats = threading.Semaphore(0)

    class Beats(stompws.Listener):
        def on_heartbeat(self) -> None:
            beats.release()

    # The client beats every 200 ms and the broker tolerates 400 ms of silence; the broker
    # beats every 50 ms, so 12 of its beats outlast that tolerance.
    client = clients(url, heartbeats=(200, 50))
    client.add_listener(Beats())
    for _ in range(12):
        assert beats.acquire(timeout=WAIT)
    assert client.is_connected
    assert len(broker.wait_for_connections(1)) == 1
