"""Reconnect through a faulty network to real brokers: a cut, refused connections, a frozen
broker, and disconnect() while the client is trying again."""

from __future__ import annotations

import threading
import time

import pytest

import stompws
from stompws import (
    ClientState,
    ConnectionClosed,
    FrameParser,
    HeartbeatTimeout,
    NotConnected,
    Reconnect,
)

from ..support.recording import Recorder
from .conftest import ClientFactory
from .proxy import FaultProxy
from .support import (
    WAIT,
    Broker,
    check_attempts,
    new_queue,
    prefetch,
    safe_tolerance,
)

pytestmark = pytest.mark.brokers

RECONNECT = Reconnect(initial=0.05, maximum=0.5)
CONNECT_TIMEOUT = 1.5


def subscribes(data: bytes | bytearray) -> list[stompws.Frame]:
    """The SUBSCRIBE frames in what a client sent over STOMP-over-TCP."""
    frames = FrameParser("1.2").feed(bytes(data))
    return [f for f in frames if isinstance(f, stompws.Frame) and f.command == "SUBSCRIBE"]


def test_cut_reconnects_and_the_subscription_goes_on(
    broker: Broker, proxy: FaultProxy, make_client: ClientFactory
) -> None:
    recorder = Recorder()
    client = make_client(
        proxy.url_for(broker.url),
        heartbeats=(1000, 1000),
        heartbeat_tolerance=safe_tolerance(broker),
        reconnect=RECONNECT,
        connect_timeout=CONNECT_TIMEOUT,
    )
    client.add_listener(recorder)
    client.connect()
    queue, elsewhere = new_queue("faults-cut"), new_queue("faults-cut-other")
    subscription = client.subscribe(
        queue, ack="client-individual", headers=prefetch(broker, 10), receipt=True
    )
    producer = make_client(broker.url, heartbeats=(0, 0))
    producer.connect()
    producer.send(queue, "before", receipt=True).wait(WAIT)  # type: ignore[union-attr]
    before = subscription.get(WAIT)
    assert before.text == "before"
    before.ack()
    # A RECEIPT for a later frame: the broker has handled the ACK (frames go in order).
    client.send(elsewhere, "sync", receipt=True).wait(WAIT)  # type: ignore[union-attr]

    # A receipt pending at the loss: the proxy holds the SEND, then the connection is cut
    # and new connections are refused.
    proxy.freeze()
    pending = client.send(elsewhere, "held", receipt=True)
    assert pending is not None
    proxy.refuse()
    proxy.cut()
    proxy.unfreeze()
    with pytest.raises(ConnectionClosed) as lost:
        pending.wait(WAIT)
    assert not isinstance(lost.value, HeartbeatTimeout)
    recorder.wait_for("disconnected", 3)  # the loss and two refused attempts

    # send() while reconnecting waits up to connect_timeout, then raises.
    started = time.monotonic()
    with pytest.raises(NotConnected, match="reconnecting"):
        client.send(queue, "while refused")
    waited = time.monotonic() - started
    assert CONNECT_TIMEOUT - 0.05 <= waited <= CONNECT_TIMEOUT + 1.0, waited
    assert client.state is ClientState.RECONNECTING

    proxy.accept()
    recorder.wait_for("connected", 2)
    producer.send(queue, "after", receipt=True).wait(WAIT)  # type: ignore[union-attr]
    after = subscription.get(WAIT)
    assert after.text == "after"  # "before" was acknowledged: not redelivered
    assert after.headers["subscription"] == subscription.id
    after.ack()
    assert client.subscriptions == [subscription]
    assert client.is_connected
    if not broker.websocket:  # plain STOMP on the wire: compare the SUBSCRIBE frames
        first = subscribes(proxy.records[0].up)
        last = subscribes(proxy.records[-1].up)
        assert len(first) == len(last) == 1
        expected = [pair for pair in first[0].header_list if pair[0] != "receipt"]
        assert [pair for pair in last[0].header_list if pair[0] != "receipt"] == expected
        assert "receipt" in last[0].headers  # a refusal would name this subscription

    client.disconnect()
    names = recorder.names()
    attempts, established = check_attempts(names)
    assert established == 2
    assert attempts >= 4  # the first, two or more refused, the one that worked
    assert "heartbeat_timeout" not in names
    assert recorder.of("disconnected")[-1] is None


@pytest.mark.parametrize("situation", ["backoff", "frozen-attempt"])
def test_disconnect_while_reconnecting_returns_promptly(
    broker: Broker, proxy: FaultProxy, make_client: ClientFactory, situation: str
) -> None:
    """disconnect() stops a reconnect at once: in a long backoff wait, and in an attempt
    that hangs because the network is frozen (TCP accepted, nothing answers)."""
    recorder = Recorder()
    backoff = situation == "backoff"
    client = make_client(
        proxy.url_for(broker.url),
        heartbeats=(0, 0),
        reconnect=Reconnect(initial=30, maximum=30) if backoff else RECONNECT,
        connect_timeout=WAIT,
    )
    client.add_listener(recorder)
    client.connect()
    client.subscribe(new_queue(), receipt=True)
    if not backoff:
        proxy.freeze()  # the next attempt connects to the proxy and then hears nothing
    proxy.cut()
    recorder.wait_for("disconnected")
    if not backoff:
        recorder.wait_for("connecting", 2)
        # The attempt has sent its first bytes (WebSocket handshake or CONNECT), which the
        # frozen proxy holds: it now waits for an answer that does not come.
        assert proxy.wait_for_accepted(2).client_spoke.wait(WAIT)
    started = time.monotonic()
    client.disconnect(timeout=2.0)
    took = time.monotonic() - started
    left = [
        t.name
        for t in threading.enumerate()
        if t.name.startswith("stompws-") and not t.name.startswith("stompws-testbroker-")
    ]
    # The network comes back: nothing of the closed client may connect any more.
    proxy.unfreeze()
    idle = proxy.wait_until_idle(3.0)
    events = recorder.names()
    assert (took < 1.0, left, idle) == (True, [], True), (
        f"disconnect() took {took:.2f} s ({situation}); threads alive after it: {left}; "
        f"connections through the proxy still open 3 s after the unfreeze: {not idle}; "
        f"state {client.state.value}; events {events}"
    )
    assert client.state is ClientState.CLOSED
    check_attempts(events)


def test_frozen_broker_then_recovery(
    broker: Broker, proxy: FaultProxy, make_client: ClientFactory
) -> None:
    """A freeze with reconnect: one heart-beat timeout, attempts that time out while frozen,
    and after the unfreeze a new connection on which the same subscription receives."""
    recorder = Recorder()
    client = make_client(
        proxy.url_for(broker.url),
        heartbeats=(500, 500),
        heartbeat_tolerance=safe_tolerance(broker),
        reconnect=RECONNECT,
        connect_timeout=1.0,
    )
    client.add_listener(recorder)
    client.connect()
    queue = new_queue("faults-frozen")
    subscription = client.subscribe(queue, receipt=True)
    proxy.freeze()
    pending = client.send(new_queue(), "held", receipt=True)
    assert pending is not None
    got: list[BaseException] = []
    waiter = threading.Thread(target=lambda: _wait(pending, got), name="receipt-waiter")
    waiter.start()
    recorder.wait_for("heartbeat_timeout")
    loss = recorder.wait_for_events("disconnected")[0]
    assert isinstance(loss.value, HeartbeatTimeout)
    waiter.join(WAIT)
    assert len(got) == 1 and isinstance(got[0], HeartbeatTimeout), got
    recorder.wait_for("disconnected", 2)  # an attempt through the frozen proxy timed out
    proxy.unfreeze()
    connected = recorder.wait_for_events("connected", 2)[1]
    assert connected.at > loss.at
    producer = make_client(broker.url, heartbeats=(0, 0))
    producer.connect()
    producer.send(queue, "after the freeze", receipt=True).wait(WAIT)  # type: ignore[union-attr]
    assert subscription.get(WAIT).text == "after the freeze"
    assert client.state is ClientState.CONNECTED
    client.disconnect()
    names = recorder.names()
    assert names.count("heartbeat_timeout") == 1
    attempts, established = check_attempts(names)
    assert established == 2 and attempts >= 3


def _wait(receipt: stompws.Receipt, into: list[BaseException]) -> None:
    try:
        receipt.wait(WAIT)
    except BaseException as error:
        into.append(error)
