"""Subscriptions, receipts and listeners on the real brokers."""

from __future__ import annotations

import threading
import uuid

import pytest

import stompws

from ..support.recording import Collector, Recorder
from .conftest import ClientFactory
from .support import WAIT, Target

pytestmark = pytest.mark.brokers


def test_receipt_wait_returns_the_receipt_frame(client: stompws.Client, queue: str) -> None:
    receipt = client.send(queue, "with receipt", receipt=True)

    assert isinstance(receipt, stompws.Receipt)
    frame = receipt.wait(WAIT)
    assert frame.command == "RECEIPT"
    assert frame.headers["receipt-id"] == receipt.id
    assert receipt.done
    assert receipt.wait(0) is frame  # waiting again returns at once
    assert client.send(queue, "without receipt") is None


def test_subscribe_with_receipt_and_subscription_attributes(
    client: stompws.Client, queue: str
) -> None:
    subscription = client.subscribe(queue, id="my-subscription", receipt=True)

    assert subscription.id == "my-subscription"
    assert subscription.destination == queue
    assert client.subscriptions == [subscription]
    client.send(queue, "hello")
    frame = subscription.get(timeout=WAIT)
    assert frame.headers["subscription"] == "my-subscription"


def test_unsubscribe_stops_delivery(client: stompws.Client, queue: str) -> None:
    first = client.subscribe(queue, receipt=True)
    client.send(queue, "before")
    assert first.get(timeout=WAIT).text == "before"

    receipt = first.unsubscribe(receipt=True)
    assert receipt is not None
    receipt.wait(WAIT)
    assert client.subscriptions == []
    client.send(queue, "after")
    second = client.subscribe(queue, receipt=True)

    frame = second.get(timeout=WAIT)
    assert frame.text == "after"
    assert frame.headers.get("subscription", second.id) == second.id
    with pytest.raises(stompws.NotConnected):
        first.get(timeout=WAIT)  # ended, and nothing buffered


def test_client_unsubscribe_by_id(client: stompws.Client, queue: str) -> None:
    subscription = client.subscribe(queue, receipt=True)

    client.unsubscribe(subscription.id)

    assert client.subscriptions == []
    assert not subscription.active


def test_callback_gets_the_subscription_messages(client: stompws.Client, queue: str) -> None:
    collected = Collector()
    subscription = client.subscribe(queue, callback=collected, receipt=True)

    for number in range(3):
        client.send(queue, f"callback {number}")

    frames = collected.wait_for(3)
    assert [frame.text for frame in frames] == ["callback 0", "callback 1", "callback 2"]
    assert all(name.startswith("stompws-reader") for name in collected.threads)
    # A subscription with a callback buffers nothing for get(); a short wait proves it.
    with pytest.raises(stompws.ReceiveTimeout):
        subscription.get(timeout=0.3)


def test_get_and_iteration(client: stompws.Client, queue: str) -> None:
    subscription = client.subscribe(queue, receipt=True)
    for number in range(5):
        client.send(queue, f"item {number}")

    first = subscription.get(timeout=WAIT)
    rest = []
    for frame in subscription:
        rest.append(frame.text)
        if len(rest) == 4:
            break

    assert [first.text, *rest] == [f"item {number}" for number in range(5)]
    with pytest.raises(TimeoutError):  # ReceiveTimeout is a TimeoutError; a short wait
        subscription.get(timeout=0.2)


def test_iteration_ends_when_unsubscribed(client: stompws.Client, queue: str) -> None:
    subscription = client.subscribe(queue, receipt=True)
    received: list[str] = []
    started = threading.Event()
    got_one = threading.Event()

    def iterate() -> None:
        started.set()
        for frame in subscription:  # blocks in get() without a timeout
            received.append(frame.text)
            got_one.set()

    reader = threading.Thread(target=iterate, name="test-iterate", daemon=True)
    reader.start()
    assert started.wait(WAIT)
    client.send(queue, "one")
    assert got_one.wait(WAIT)

    subscription.unsubscribe()

    reader.join(WAIT)
    assert not reader.is_alive()
    assert received == ["one"]


def test_listener_that_raises_does_not_stop_delivery(
    make_client: ClientFactory, queue: str
) -> None:
    class Broken(stompws.Listener):
        def on_message(self, frame: stompws.Frame) -> None:
            raise ValueError(f"broken listener got {frame.text}")

    recorder = Recorder()
    client = make_client(listeners=[Broken(), recorder])

    def broken_callback(frame: stompws.Frame) -> None:
        raise KeyError(frame.text)

    client.subscribe(queue, callback=broken_callback, receipt=True)
    for number in range(3):
        client.send(queue, f"survives {number}")

    messages = recorder.wait_for("message", 3)
    assert [frame.text for frame in messages] == [f"survives {n}" for n in range(3)]
    failures = recorder.wait_for("listener_error", 6)
    events = sorted(event for _, event in failures)
    assert events == ["callback"] * 3 + ["on_message"] * 3
    assert {type(exc) for exc, _ in failures} == {ValueError, KeyError}
    assert client.is_connected
    client.send(queue, "still alive", receipt=True).wait(WAIT)  # type: ignore[union-attr]


def test_waiting_listener(make_client: ClientFactory, queue: str) -> None:
    waiting = stompws.WaitingListener()
    client = make_client(listeners=[waiting])
    assert waiting.wait_for_connected(WAIT).command == "CONNECTED"
    client.subscribe(queue, receipt=True)

    receipt = client.send(queue, "first", receipt=True)
    client.send(queue, "second")

    assert receipt is not None
    assert waiting.wait_for_receipt(receipt.id, timeout=WAIT).headers["receipt-id"] == receipt.id
    assert waiting.wait_for_message(WAIT).text == "first"
    assert [frame.text for frame in waiting.wait_for_messages(2, WAIT)] == ["first", "second"]
    client.disconnect()
    assert waiting.wait_for_disconnect(WAIT) is None


def test_topic_reaches_every_subscriber(target: Target, make_client: ClientFactory) -> None:
    topic = f"/topic/stompws-it-{uuid.uuid4().hex}"
    first = make_client()
    second = make_client()
    subscriptions = [first.subscribe(topic, receipt=True), second.subscribe(topic, receipt=True)]

    first.send(topic, "to all")

    assert [sub.get(timeout=WAIT).text for sub in subscriptions] == ["to all", "to all"]
