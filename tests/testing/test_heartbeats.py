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


def heartbeat_span(peer: RawPeer, gaps: int) -> float:
    """Seconds from the next heart-beat to the ``gaps``-th after it: ``gaps`` intervals.

    Timed from a beat, not from the CONNECTED, so that where the count starts within an
    interval does not matter; and judged over many gaps, so that one late beat on a loaded
    machine does not either."""
    assert peer.next(WAIT) is HEARTBEAT
    start = time.monotonic()
    for _ in range(gaps):
        assert peer.next(WAIT) is HEARTBEAT
    return time.monotonic() - start


def test_the_broker_sends_heartbeats_at_the_agreed_rate(url: str, raw: Raw) -> None:
    peer = raw(url)
    connected = peer.connect(heart_beat="0,100")
    assert connected.headers["heart-beat"] == "100,0"
    # 10 intervals of 100 ms: 1 s. Beating twice as often would take 0.5 s; lateness only
    # lengthens it, and 3 s would mean beats missed outright.
    assert 0.7 < heartbeat_span(peer, 10) < 3.0


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
    # 6 intervals: 0.9 s at 150 ms, 0.3 s at the 50 the client asked for.
    assert heartbeat_span(peer, 6) > 0.6


def test_a_silent_client_gets_error_and_is_closed(url: str, raw: Raw) -> None:
    peer = raw(url)
    # Timed from before the CONNECT: the broker's clock starts at its CONNECTED, which is
    # later, so the bound holds however late this thread runs (timed from after connect(),
    # a delayed test thread shortened what it measured).
    start = time.monotonic()
    peer.connect(heart_beat="100,0")  # promises a heart-beat every 100 ms, then sends none
    error = peer.expect("ERROR")
    elapsed = time.monotonic() - start
    assert error.headers["message"] == "heart-beat timeout"
    assert peer.closed()
    assert elapsed >= 0.2  # tolerance 2.0 × 100 ms


@pytest.mark.parametrize("transport", ["ws", "tcp"])
def test_a_client_that_sends_heartbeats_stays_connected(
    brokers: Callable[..., Broker], clients: Connect, transport: str
) -> None:
    beats = threading.Semaphore(0)

    class Beats(stompws.Listener):
        def on_heartbeat(self) -> None:
            beats.release()

    # The client beats every 200 ms and the broker drops it after 600 ms of silence; 12 of
    # the broker's 200 ms beats (2.4 s) outlast that 4 times. Both tolerances are 3, not the
    # default 2: with the broker in this process, a loaded machine delays its beats as much
    # as the client's, and the test is about the client beating, not about either side's
    # timer holding to 100 ms (with 50 ms broker beats and the client's tolerance of about
    # 110 ms, 3 busy threads failed this test 6 times in 14).
    broker = brokers(heartbeat_tolerance=3.0)
    url = broker.ws_url if transport == "ws" else broker.tcp_url
    client = clients(url, heartbeats=(200, 200), heartbeat_tolerance=3.0)
    client.add_listener(Beats())
    for _ in range(12):
        assert beats.acquire(timeout=WAIT)
    assert client.is_connected
    assert len(broker.wait_for_connections(1)) == 1
