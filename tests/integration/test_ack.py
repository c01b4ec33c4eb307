"""Acknowledgement modes, NACK and redelivery on the real brokers.

What did *not* arrive is proven without sleeping: a sentinel message sent afterwards reaches
the queue behind anything still in it (see ``drain_until``).
"""

from __future__ import annotations

import pytest

import stompws

from .conftest import ClientFactory
from .support import WAIT, Target, drain_until, new_queue, targets

pytestmark = pytest.mark.brokers

MODERN = targets(versions=["1.1", "1.2"])


def _fill(client: stompws.Client, queue: str, count: int) -> None:
    for number in range(1, count + 1):
        client.send(queue, f"m{number}")


def _remaining(make_client: ClientFactory, queue: str) -> list[str]:
    """What a new consumer still gets from ``queue``, in order."""
    consumer = make_client()
    subscription = consumer.subscribe(queue, receipt=True)
    consumer.send(queue, "sentinel")
    return drain_until(subscription, "sentinel")


def test_auto_ack_messages_are_gone_once_delivered(make_client: ClientFactory, queue: str) -> None:
    first = make_client()
    subscription = first.subscribe(queue, ack="auto", receipt=True)
    _fill(first, queue, 3)
    assert [subscription.get(timeout=WAIT).text for _ in range(3)] == ["m1", "m2", "m3"]
    first.disconnect()

    assert _remaining(make_client, queue) == []


def test_client_ack_is_cumulative(make_client: ClientFactory, queue: str) -> None:
    first = make_client()
    subscription = first.subscribe(queue, ack="client", receipt=True)
    _fill(first, queue, 5)
    frames = [subscription.get(timeout=WAIT) for _ in range(5)]
    assert [frame.text for frame in frames] == ["m1", "m2", "m3", "m4", "m5"]

    frames[2].ack()  # acknowledges m1, m2 and m3
    first.disconnect()

    assert _remaining(make_client, queue) == ["m4", "m5"]


@pytest.mark.parametrize("target", MODERN, indirect=True)
def test_client_individual_ack_acknowledges_one_message(
    make_client: ClientFactory, queue: str
) -> None:
    first = make_client()
    subscription = first.subscribe(queue, ack="client-individual", receipt=True)
    _fill(first, queue, 5)
    frames = {frame.text: frame for frame in (subscription.get(timeout=WAIT) for _ in range(5))}

    first.ack(frames["m2"])
    frames["m4"].ack()
    first.disconnect()

    assert sorted(_remaining(make_client, queue)) == ["m1", "m3", "m5"]


@pytest.mark.parametrize("target", targets(versions=["1.0"]), indirect=True)
def test_stomp_1_0_has_no_client_individual_and_no_nack(client: stompws.Client, queue: str) -> None:
    with pytest.raises(stompws.UsageError):
        client.subscribe(queue, ack="client-individual")
    subscription = client.subscribe(queue, ack="client", receipt=True)
    client.send(queue, "m1")
    frame = subscription.get(timeout=WAIT)
    with pytest.raises(stompws.UsageError):
        frame.nack()
    frame.ack()
    assert client.is_connected


def test_unacked_messages_go_to_the_next_consumer_after_a_disconnect(
    target: Target, make_client: ClientFactory, queue: str
) -> None:
    first = make_client()
    first_subscription = first.subscribe(queue, ack="client", receipt=True)
    first.send(queue, "unacked")
    original = first_subscription.get(timeout=WAIT)
    second = make_client()
    second_subscription = second.subscribe(queue, ack="client", receipt=True)

    first.disconnect()  # without an ACK

    again = second_subscription.get(timeout=WAIT)
    assert again.text == "unacked"
    assert again.headers["redelivered"] == "true"
    # Broker quirk: ActiveMQ (and the embedded broker) keep the message-id of a redelivered
    # message; RabbitMQ's message-id names the delivery (subscription, session, tag).
    same_id = again.headers["message-id"] == original.headers["message-id"]
    assert same_id is not target.rabbitmq
    again.ack()


@pytest.mark.parametrize(
    "target", targets(brokers=["rabbitmq"], versions=["1.1", "1.2"]), indirect=True
)
def test_rabbitmq_nack_redelivers_at_once(client: stompws.Client, queue: str) -> None:
    subscription = client.subscribe(queue, ack="client-individual", receipt=True)
    client.send(queue, "refused once")
    first = subscription.get(timeout=WAIT)
    assert first.headers["redelivered"] == "false"

    first.nack()

    again = subscription.get(timeout=WAIT)
    assert again.text == "refused once"
    assert again.headers["redelivered"] == "true"
    assert again.headers["message-id"] != first.headers["message-id"]
    client.ack(again)


@pytest.mark.parametrize(
    "target", targets(brokers=["activemq"], versions=["1.1", "1.2"]), indirect=True
)
def test_activemq_nack_moves_a_persistent_message_to_the_dead_letter_queue(
    client: stompws.Client, queue: str
) -> None:
    # Broker quirk: ActiveMQ does not redeliver a NACKed message; a persistent one goes to
    # ActiveMQ.DLQ at once (a non-persistent one is dropped).
    subscription = client.subscribe(queue, ack="client-individual", receipt=True)
    client.send(queue, "dead letter", headers={"persistent": "true"})
    frame = subscription.get(timeout=WAIT)
    message_id = frame.headers["message-id"]

    client.nack(frame)

    dead = client.subscribe(
        "/queue/ActiveMQ.DLQ",
        ack="client-individual",
        headers={"selector": f"JMSMessageID = '{message_id}'"},
        receipt=True,
    )
    letter = dead.get(timeout=WAIT)
    assert letter.text == "dead letter"
    assert letter.headers["original-destination"] == queue
    letter.ack()  # consumed, so the shared dead letter queue does not grow
    client.send(queue, "sentinel")
    assert drain_until(subscription, "sentinel") == []


def test_ack_inside_an_aborted_transaction_is_undone(
    make_client: ClientFactory, queue: str
) -> None:
    first = make_client()
    subscription = first.subscribe(queue, ack="client", receipt=True)
    first.send(queue, "kept")
    frame = subscription.get(timeout=WAIT)

    transaction = first.begin()
    transaction.ack(frame)
    transaction.abort()
    first.disconnect()

    assert _remaining(make_client, queue) == ["kept"]


@pytest.mark.parametrize("target", targets(versions=["1.2"]), indirect=True)
def test_ack_with_receipt_returns_the_receipt(client: stompws.Client) -> None:
    # client.ack(..., receipt=True) registers a receipt and puts it on the wire, so it
    # must hand back the Receipt to wait on, as send/unsubscribe/commit do.
    queue = new_queue()
    subscription = client.subscribe(queue, ack="client", receipt=True)
    client.send(queue, "receipted ack")
    frame = subscription.get(timeout=WAIT)

    receipt = client.ack(frame, receipt=True)  # type: ignore[func-returns-value]

    assert isinstance(receipt, stompws.Receipt)
    assert receipt.wait(WAIT).headers["receipt-id"] == receipt.id
