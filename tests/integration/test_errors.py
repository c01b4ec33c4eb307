"""ERROR frames and broker-side closes: each must surface, and the client must not hang."""

from __future__ import annotations

import threading
import time

import pytest

import stompws

from ..support.recording import Recorder
from .conftest import ClientFactory
from .support import WAIT, Target, targets

pytestmark = pytest.mark.brokers


def _still_works(client: stompws.Client, queue: str) -> None:
    assert client.is_connected
    receipt = client.send(queue, "still connected", receipt=True)
    assert receipt is not None
    receipt.wait(WAIT)


def test_error_that_keeps_the_connection(
    target: Target, make_client: ClientFactory, queue: str
) -> None:
    recorder = Recorder()
    client = make_client(listeners=[recorder])

    # A transaction the broker never saw begin (the header goes around the client's check).
    receipt = client.send(queue, "x", headers={"transaction": "no-such-tx"}, receipt=True)
    assert receipt is not None

    (error,) = recorder.wait_for("error")
    assert error.command == "ERROR"
    if target.embedded:
        # The embedded broker answers with the receipt-id and, unlike RabbitMQ and
        # ActiveMQ, closes the connection after any ERROR (a documented difference).
        assert "unknown transaction" in error.headers["message"]
        with pytest.raises(stompws.BrokerError):
            receipt.wait(WAIT)
        (reason,) = recorder.wait_for("disconnected")
        assert isinstance(reason, stompws.BrokerError)
        return
    if target.activemq:
        assert "Invalid transaction id" in error.headers["message"]
        # ActiveMQ names the receipt in its ERROR, so the wait fails with it.
        with pytest.raises(stompws.BrokerError) as caught:
            receipt.wait(WAIT)
        assert caught.value.frame.headers["receipt-id"] == receipt.id
    else:
        # Broker quirk: RabbitMQ's ERROR carries no receipt-id, so the RECEIPT just never
        # comes; the ERROR reaches the listeners only.
        assert error.headers["message"] == "Bad transaction"
        assert "receipt-id" not in error.headers
    _still_works(client, queue)
    assert recorder.of("disconnected") == []


@pytest.mark.parametrize("target", targets(brokers=["rabbitmq"]), indirect=True)
def test_rabbitmq_unknown_destination_is_an_error_that_keeps_the_connection(
    make_client: ClientFactory, queue: str
) -> None:
    recorder = Recorder()
    client = make_client(listeners=[recorder])

    client.send("/no-such-kind/of-destination", "x")

    (error,) = recorder.wait_for("error")
    assert error.headers["message"] == "Unknown destination"
    assert "/queue" in error.text  # the body lists the valid destination kinds
    _still_works(client, queue)


@pytest.mark.parametrize("target", targets(brokers=["rabbitmq"]), indirect=True)
def test_rabbitmq_error_that_kills_the_channel(
    target: Target, make_client: ClientFactory, queue: str
) -> None:
    recorder = Recorder()
    client = make_client(listeners=[recorder])
    subscription = client.subscribe(queue, receipt=True)

    receipt = client.send("/exchange/nonexistent-xyz", "x", receipt=True)
    assert receipt is not None

    (reason,) = recorder.wait_for("disconnected")
    if target.websocket:
        # Broker quirk: over WebSocket RabbitMQ sends no ERROR, only a close (1000,
        # "STOMP died"): the WebSocket close is what must surface.
        assert isinstance(reason, stompws.ConnectionClosed)
        assert reason.code == 1000
        assert reason.reason == "STOMP died"
        assert recorder.of("error") == []
        with pytest.raises(stompws.ConnectionClosed):
            receipt.wait(WAIT)
    else:
        # Over TCP: an ERROR, then a close, reported as the ERROR.
        (error,) = recorder.of("error")
        assert error.headers["message"] == "not_found"
        assert "nonexistent-xyz" in error.text
        assert isinstance(reason, stompws.BrokerError)
        assert reason.frame is error
        # RabbitMQ's ERROR names no receipt: the receipt fails because the connection
        # ended, caused by that ERROR (it is never blamed on a frame it did not name).
        with pytest.raises(stompws.ConnectionClosed, match="nonexistent-xyz") as caught:
            receipt.wait(WAIT)
        assert caught.value.__cause__ is reason
        # on_error came before on_disconnected
        names = recorder.names()
        assert names.index("error") < names.index("disconnected")

    assert not client.is_connected
    with pytest.raises(stompws.NotConnected):
        client.send(queue, "after the end")
    with pytest.raises(stompws.StompError) as ended:
        subscription.get(timeout=WAIT)
    assert not isinstance(ended.value, stompws.ReceiveTimeout)
    started = time.monotonic()
    client.disconnect(timeout=5.0)
    assert time.monotonic() - started < 1.0
    assert len(recorder.of("disconnected")) == 1


@pytest.mark.parametrize("target", targets(brokers=["rabbitmq"], versions=["1.2"]), indirect=True)
def test_rabbitmq_subscribe_to_a_missing_amq_queue(
    target: Target, make_client: ClientFactory
) -> None:
    recorder = Recorder()
    client = make_client(listeners=[recorder])

    if target.websocket:
        with pytest.raises(stompws.ConnectionClosed) as caught:
            client.subscribe("/amq/queue/stompws-it-nonexistent-xyz", receipt=True)
        assert caught.value.code == 1000
        assert recorder.of("error") == []
    else:
        # Over TCP RabbitMQ sends the ERROR (no receipt-id), then still the RECEIPT of the
        # SUBSCRIBE, then closes: the RECEIPT is held in doubt and the ERROR wins.
        with pytest.raises(stompws.BrokerError) as refused:
            client.subscribe("/amq/queue/stompws-it-nonexistent-xyz", receipt=True)
        assert refused.value.frame.headers["message"] == "not_found"
        (error,) = recorder.wait_for("error")
        assert error.headers["message"] == "not_found"
    assert client.subscriptions == []

    (reason,) = recorder.wait_for("disconnected")
    assert isinstance(reason, stompws.StompError)
    assert not client.is_connected


@pytest.mark.parametrize("target", targets(brokers=["rabbitmq"], versions=["1.2"]), indirect=True)
def test_disconnect_after_the_broker_closed_joins_the_threads(
    make_client: ClientFactory,
) -> None:
    # disconnect() promises to join the client's threads "also when the connection is
    # already dead". Called right after on_disconnected, it must not return while the
    # reader or heart-beat thread of that connection is still running. A few rounds,
    # because the window is a thread switch wide.
    for _ in range(5):
        before = set(threading.enumerate())
        recorder = Recorder()
        client = make_client(listeners=[recorder])
        client.send("/exchange/nonexistent-xyz", "kills the channel")
        recorder.wait_for("disconnected")

        client.disconnect(timeout=5.0)

        alive = [
            thread.name
            for thread in set(threading.enumerate()) - before
            if thread.name.startswith("stompws-") and thread.is_alive()
        ]
        assert alive == [], f"disconnect() returned while {alive} still ran"
