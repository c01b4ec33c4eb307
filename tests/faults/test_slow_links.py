"""Slow and broken links to real brokers: frames that trickle in byte by byte, latency, and
every blocking call returning within its timeout whatever the network does."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from stompws import ConnectError, ReceiptTimeout, ReceiveTimeout

from ..support.recording import Recorder
from .conftest import ClientFactory
from .proxy import FaultProxy
from .support import WAIT, Broker, new_queue, safe_tolerance

pytestmark = pytest.mark.brokers

SLACK = 0.5  # seconds a call may overrun its timeout on a busy 2-core machine


def test_trickled_frames_still_parse(
    broker: Broker, proxy: FaultProxy, make_client: ClientFactory
) -> None:
    """Every byte in both directions (handshake, CONNECT, CONNECTED, MESSAGE, RECEIPT)
    travels alone, with a pause after it."""
    proxy.trickle(0.0005)
    client = make_client(proxy.url_for(broker.url), connect_timeout=WAIT)
    client.connect()
    queue = new_queue("faults-trickle")
    subscription = client.subscribe(queue, receipt=True)
    producer = make_client(broker.url, heartbeats=(0, 0))
    producer.connect()
    binary = b"\x00nul\x01\xfe\xff"
    producer.send(queue, "plain")
    producer.send(queue, binary, content_type="application/octet-stream")
    producer.send(queue, "héllo ✓", headers={"x-note": "a:b\\c"}, content_type="text/plain")
    client.send(queue, "from the trickling side", receipt=True).wait(WAIT)  # type: ignore[union-attr]
    frames = [subscription.get(WAIT) for _ in range(4)]
    by_body = {frame.body: frame for frame in frames}
    assert set(by_body) == {
        b"plain",
        binary,
        "héllo ✓".encode(),
        b"from the trickling side",
    }
    assert by_body["héllo ✓".encode()].headers["x-note"] == "a:b\\c"
    assert by_body["héllo ✓".encode()].text == "héllo ✓"
    assert all(frame.headers["subscription"] == subscription.id for frame in frames)
    assert client.is_connected


def test_receipts_arrive_through_latency_and_receipt_timeout_holds(
    broker: Broker, proxy: FaultProxy, make_client: ClientFactory
) -> None:
    # Per chunk, each way: a round trip takes at least 1 s, so a wait that ended at the
    # receipt_timeout (0.1 s) and one that waited for the RECEIPT are 0.9 s apart, room for
    # a loaded machine (0.15 s, a 0.3 s round trip, left 0.2 s).
    delay = 0.5
    proxy.delay(delay)
    recorder = Recorder()
    client = make_client(
        proxy.url_for(broker.url),
        heartbeats=(500, 500),
        heartbeat_tolerance=safe_tolerance(broker),
        receipt_timeout=0.1,
        connect_timeout=WAIT,
    )
    client.add_listener(recorder)
    started = time.monotonic()
    client.connect()
    assert time.monotonic() - started >= 2 * delay
    queue = new_queue("faults-delay")
    subscription = client.subscribe(queue)
    sent = time.monotonic()
    receipt = client.send(queue, "delayed", receipt=True)
    assert receipt is not None
    with pytest.raises(ReceiptTimeout):
        receipt.wait()  # the client's receipt_timeout, 0.1 s: shorter than the round trip
    waited = time.monotonic() - sent
    assert 0.1 <= waited < 2 * delay, waited
    assert receipt.wait(WAIT).headers["receipt-id"] == receipt.id  # it came after all
    assert time.monotonic() - sent >= 2 * delay
    assert subscription.get(WAIT).text == "delayed"
    for number in range(3):
        client.send(queue, f"m{number}", receipt=True).wait(WAIT)  # type: ignore[union-attr]
    assert [subscription.get(WAIT).text for _ in range(3)] == ["m0", "m1", "m2"]
    assert recorder.of("heartbeat_timeout") == []
    assert client.is_connected


FAULTS: dict[str, Callable[[FaultProxy], None]] = {
    "frozen": lambda proxy: proxy.freeze(),
    "long-delay": lambda proxy: proxy.delay(3.0),
    "slow-trickle": lambda proxy: proxy.trickle(0.05),
    # Answers that drip in, a byte every 50 ms: a read never waits long, the whole does. The
    # shortest answer (a RECEIPT, 22 bytes or more) then takes over 1 s, well past the
    # 0.3 s the calls wait (10 ms per byte made that a coin toss on ActiveMQ).
    "dripping-answers": lambda proxy: proxy.trickle(0.05, direction="down"),
    "refused": lambda proxy: proxy.refuse(),
}


@contextmanager
def within(seconds: float, what: str) -> Iterator[None]:
    """The block must end (return or raise) within ``seconds`` + SLACK."""
    started = time.monotonic()
    yield
    took = time.monotonic() - started
    assert took <= seconds + SLACK, f"{what} took {took:.2f} s, its timeout is {seconds:g} s"


# What each call must end with under each fault, not only how soon: "ok" (it worked) or
# the exception class. "refused" leaves the open connection alone; every other fault holds
# back the RECEIPT, the MESSAGE and a new connection's handshake past the call's timeout.
_HELD_BACK = {
    "receipt": "ReceiptTimeout",
    "get": "ReceiveTimeout",
    "connect": "ConnectTimeout",
}
EXPECTED: dict[str, dict[str, str]] = {
    "frozen": _HELD_BACK,
    "long-delay": _HELD_BACK,
    "slow-trickle": _HELD_BACK,
    "dripping-answers": _HELD_BACK,
    "refused": {"receipt": "ok", "get": "ok", "connect": "ConnectError"},
}


def outcome(call: Callable[[], object]) -> str:
    try:
        call()
    except (ReceiptTimeout, ReceiveTimeout, ConnectError) as error:
        return type(error).__name__
    return "ok"


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize(
    "broker", ["rabbitmq-ws", "activemq-tcp", "embedded-ws", "embedded-tcp"], indirect=True
)
def test_blocking_calls_return_within_their_timeouts(
    broker: Broker, proxy: FaultProxy, make_client: ClientFactory, fault: str
) -> None:
    """Receipt.wait, Subscription.get, disconnect and connect under each fault: each
    returns in time and with the outcome the fault implies."""
    client = make_client(proxy.url_for(broker.url), heartbeats=(0, 0), connect_timeout=WAIT)
    client.connect()
    queue = new_queue("faults-bounded")
    subscription = client.subscribe(queue, receipt=True)
    FAULTS[fault](proxy)
    receipt = client.send(queue, "x", receipt=True)
    assert receipt is not None
    seen: dict[str, str] = {}
    with within(0.3, "Receipt.wait(0.3)"):
        seen["receipt"] = outcome(lambda: receipt.wait(0.3))
    # A RECEIPT that came means the MESSAGE is on its way (the broker may route it after
    # answering): give get() the same 0.3 s it had, from the RECEIPT on.
    with within(0.3, "Subscription.get(0.3)"):
        seen["get"] = outcome(lambda: subscription.get(0.3))
    with within(0.5, "disconnect(0.5)"):
        client.disconnect(timeout=0.5)
    other = make_client(proxy.url_for(broker.url), heartbeats=(0, 0), connect_timeout=0.5)
    with within(0.5, "connect() with connect_timeout=0.5"):
        seen["connect"] = outcome(other.connect)
    with within(0.5, "disconnect(0.5) after connect()"):
        other.disconnect(timeout=0.5)
    assert not client.is_connected
    assert seen == EXPECTED[fault]


def test_disconnect_from_a_frozen_broker_reports_once(
    proxy: FaultProxy, make_client: ClientFactory, broker: Broker
) -> None:
    """disconnect() on a frozen link: no RECEIPT comes; it returns in time and reports
    on_disconnected(None) exactly once."""
    recorder = Recorder()
    client = make_client(proxy.url_for(broker.url), heartbeats=(0, 0))
    client.add_listener(recorder)
    client.connect()
    proxy.freeze()
    with within(0.5, "disconnect(0.5)"):
        client.disconnect(timeout=0.5)
    assert recorder.of("disconnected") == [None]
