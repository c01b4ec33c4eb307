"""The fault hooks, each seen from a client: what a test of a user's code can make happen."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

import stompws
from stompws.testing import Broker

from .support import WAIT, RawPeer

Connect = Callable[..., stompws.Client]
Raw = Callable[..., RawPeer]


def watched(client: stompws.Client) -> stompws.WaitingListener:
    listener = stompws.WaitingListener()
    client.add_listener(listener)
    return listener


def test_stop_heartbeats_makes_clients_time_out(broker: Broker, url: str, clients: Connect) -> None:
    client = clients(url, heartbeats=(0, 100))
    events = watched(client)
    broker.stop_heartbeats()
    reason = events.wait_for_disconnect(WAIT)
    assert isinstance(reason, stompws.HeartbeatTimeout)


def test_resume_heartbeats(broker: Broker, url: str, raw: Raw) -> None:
    broker.stop_heartbeats()
    peer = raw(url)
    peer.connect(heart_beat="0,50")
    peer.send_frame("SEND", {"destination": "/queue/beat", "receipt": "r"})
    peer.expect("RECEIPT")  # frames still flow without heart-beats
    broker.resume_heartbeats()
    assert peer.next(WAIT) is stompws.HEARTBEAT


def test_go_silent_writes_nothing_until_resumed(broker: Broker, url: str, clients: Connect) -> None:
    client = clients(url)
    sub = client.subscribe("/queue/silent", receipt=True)
    broker.go_silent()
    lost = client.send("/queue/silent", "into the void", receipt=True)
    assert lost is not None
    with pytest.raises(stompws.ReceiptTimeout):
        lost.wait(0.3)
    broker.resume_sending()
    heard = client.send("/queue/silent", "heard", receipt=True)
    assert heard is not None
    heard.wait(WAIT)
    assert sub.get(WAIT).text == "heard"
    assert client.is_connected  # the sockets stayed open all along


def test_a_silent_broker_is_declared_dead_by_heartbeats(
    broker: Broker, url: str, clients: Connect
) -> None:
    client = clients(url, heartbeats=(0, 100))
    events = watched(client)
    broker.go_silent()
    assert isinstance(events.wait_for_disconnect(WAIT), stompws.HeartbeatTimeout)


def test_drop_one_connection(broker: Broker, url: str, clients: Connect) -> None:
    doomed, survivor = clients(url), clients(url)
    events = watched(doomed)
    assert broker.drop_connections(session=doomed.session) == 1
    reason = events.wait_for_disconnect(WAIT)
    assert isinstance(reason, stompws.ConnectionClosed)
    assert not isinstance(reason, stompws.BrokerError)  # no ERROR: the connection just died
    receipt = survivor.send("/queue/alive", "x", receipt=True)
    assert receipt is not None
    receipt.wait(WAIT)
    assert [info.session for info in broker.wait_for_connections(1)] == [survivor.session]


def test_drop_all_connections_redelivers_unacked(
    broker: Broker, url: str, clients: Connect
) -> None:
    consumer = clients(url)
    events = watched(consumer)
    sub = consumer.subscribe("/queue/dropped", ack="client")
    consumer.send("/queue/dropped", "work")
    assert sub.get(WAIT).text == "work"
    assert broker.drop_connections() == 1
    assert isinstance(events.wait_for_disconnect(WAIT), stompws.ConnectionClosed)
    broker.wait_for_connections(0)
    again = clients(url).subscribe("/queue/dropped")
    assert again.get(WAIT).headers["redelivered"] == "true"


def test_drop_an_unknown_session_is_a_usage_error(broker: Broker) -> None:
    with pytest.raises(stompws.UsageError, match="no connection"):
        broker.drop_connections(session="session-404")


def test_send_raw_bytes_in_order_with_frames(broker: Broker, url: str, clients: Connect) -> None:
    client = clients(url)
    sub = client.subscribe("/queue/raw", id="s1", receipt=True)
    frame = b"MESSAGE\ndestination:/queue/raw\nmessage-id:fake-1\nsubscription:s1\n\nforged\x00"
    assert broker.send_raw(frame, session=client.session) == 1
    assert sub.get(WAIT).headers["message-id"] == "fake-1"


def test_send_raw_garbage_is_a_protocol_error_for_the_client(
    broker: Broker, url: str, clients: Connect
) -> None:
    client = clients(url)
    events = watched(client)
    assert broker.send_raw(b"not stomp!\n\n\x00") == 1
    assert isinstance(events.wait_for_disconnect(WAIT), stompws.ProtocolError)


def test_delay_frames(broker: Broker, url: str, clients: Connect) -> None:
    client = clients(url)
    # 1 s of delay against a bound of half that for "no delay": a loaded machine may slow
    # the undelayed answer, but not by half a second (0.3 s against 0.29 s was a coin toss).
    broker.delay_frames(1.0)
    start = time.monotonic()
    receipt = client.send("/queue/slow", "x", receipt=True)
    assert receipt is not None
    with pytest.raises(stompws.ReceiptTimeout):
        receipt.wait(0.05)
    receipt.wait(WAIT)
    assert time.monotonic() - start >= 0.99
    broker.delay_frames(0)
    start = time.monotonic()
    fast = client.send("/queue/slow", "y", receipt=True)
    assert fast is not None
    fast.wait(WAIT)
    assert time.monotonic() - start < 0.5


def test_a_negative_delay_is_refused(broker: Broker) -> None:
    with pytest.raises(stompws.UsageError):
        broker.delay_frames(-1)


def test_refuse_connections(broker: Broker, url: str, raw: Raw, clients: Connect) -> None:
    existing = clients(url)
    broker.refuse_connections()
    if url.startswith("ws"):
        with pytest.raises(stompws.ConnectError, match="503"):
            clients(url)
    else:
        peer = raw(url)
        assert peer.closed(), "a refused TCP connection is closed at once"
    assert existing.is_connected
    receipt = existing.send("/queue/ok", "x", receipt=True)
    assert receipt is not None
    receipt.wait(WAIT)
    broker.refuse_connections(False)
    assert clients(url).is_connected


@pytest.mark.parametrize("attempt", range(20))
def test_a_refused_tcp_connect_raises_connect_error(
    broker: Broker, clients: Connect, attempt: int
) -> None:
    """The broker closes a refused TCP connection at once, so the close can beat the
    client's CONNECT write, or come after it: either way connect() must raise ConnectError
    (it once raised UsageError when the close came first). Repeated, because which of the
    two happens first is up to the scheduler."""
    broker.refuse_connections()
    with pytest.raises(stompws.ConnectError):
        clients(broker.tcp_url)


def test_reset_faults(broker: Broker, url: str, clients: Connect) -> None:
    broker.stop_heartbeats()
    broker.go_silent()
    broker.delay_frames(10)
    broker.refuse_connections()
    broker.reset_faults()
    client = clients(url)
    receipt = client.send("/queue/reset", "x", receipt=True)
    assert receipt is not None
    receipt.wait(1.0)


def test_waiting_for_open_connections_counts_those_without_a_session(broker: Broker) -> None:
    # A peer that connected its socket but sent no CONNECT: open, with no session yet.
    peer = RawPeer(broker.tcp_url)
    try:
        assert len(broker.wait_for_connections(1, timeout=WAIT, sessions=False)) == 1
        assert broker.wait_for_connections(0, timeout=WAIT) == []  # sessions only
        with pytest.raises(TimeoutError, match="1 STOMP session"):
            broker.wait_for_connections(1, timeout=0.2)
    finally:
        peer.sock.close()
    broker.wait_for_connections(0, timeout=WAIT, sessions=False)
    assert broker.connections == []
