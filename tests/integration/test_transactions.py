"""Transactions on the real brokers: COMMIT, ABORT and the receipts of frames inside them."""

from __future__ import annotations

import pytest

import stompws

from .support import WAIT, Target, drain_until

pytestmark = pytest.mark.brokers


def _receipted(client: stompws.Client, queue: str, body: str) -> stompws.Receipt:
    receipt = client.send(queue, body, receipt=True)
    assert receipt is not None
    return receipt


def test_commit_delivers_what_the_transaction_sent(client: stompws.Client, queue: str) -> None:
    subscription = client.subscribe(queue, receipt=True)
    transaction = client.begin()
    assert client.transactions == [transaction]
    transaction.send(queue, "tx 1")
    transaction.send(queue, "tx 2")

    # Sent after the transaction's messages, outside it: arrives first, so they are held.
    client.send(queue, "outside")
    assert subscription.get(timeout=WAIT).text == "outside"

    transaction.commit()

    assert [subscription.get(timeout=WAIT).text for _ in range(2)] == ["tx 1", "tx 2"]
    assert client.transactions == []


def test_abort_discards_what_the_transaction_sent(client: stompws.Client, queue: str) -> None:
    subscription = client.subscribe(queue, receipt=True)
    transaction = client.begin()
    transaction.send(queue, "tx 1")
    transaction.send(queue, "tx 2")

    transaction.abort()
    client.send(queue, "sentinel")

    assert drain_until(subscription, "sentinel") == []
    assert client.transactions == []


def test_receipts_of_sends_inside_a_transaction(
    target: Target, client: stompws.Client, queue: str
) -> None:
    committed = client.begin()
    in_committed = committed.send(queue, "committed", receipt=True)
    aborted = client.begin()
    in_aborted = aborted.send(queue, "aborted", receipt=True)
    assert in_committed is not None and in_aborted is not None
    # A receipted frame outside both: once its RECEIPT is here, the broker has handled
    # everything sent before it.
    _receipted(client, queue, "marker 1").wait(WAIT)

    if target.rabbitmq:
        # Broker quirk: RabbitMQ sends the RECEIPT of a SEND in a transaction only after
        # the COMMIT, and never after an ABORT.
        assert not in_committed.done
        assert not in_aborted.done
    else:
        assert in_committed.wait(WAIT).headers["receipt-id"] == in_committed.id
        assert in_aborted.wait(WAIT).headers["receipt-id"] == in_aborted.id

    committed_receipt = committed.commit(receipt=True)
    aborted_receipt = aborted.abort(receipt=True)
    assert committed_receipt is not None and aborted_receipt is not None
    committed_receipt.wait(WAIT)
    aborted_receipt.wait(WAIT)
    _receipted(client, queue, "marker 2").wait(WAIT)

    assert in_committed.wait(WAIT).headers["receipt-id"] == in_committed.id
    if target.rabbitmq:
        assert not in_aborted.done
        with pytest.raises(stompws.ReceiptTimeout):
            in_aborted.wait(0.01)


def test_transaction_context_manager(client: stompws.Client, queue: str) -> None:
    subscription = client.subscribe(queue, receipt=True)

    with client.transaction() as transaction:
        transaction.send(queue, "committed on exit")

    def fail_inside() -> None:
        with client.transaction() as transaction:
            transaction.send(queue, "aborted on exit")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail_inside()
    client.send(queue, "sentinel")

    assert drain_until(subscription, "sentinel") == ["committed on exit"]
    assert client.transactions == []
