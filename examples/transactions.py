"""Transactions: sends and acks that take effect together at COMMIT, or not at all.

Run it with ``python examples/transactions.py`` (it starts the embedded test broker) or
against your broker, credentials in the URL::

    python examples/transactions.py ws://guest:guest@127.0.0.1:15674/ws
    python examples/transactions.py stomp://guest:guest@127.0.0.1:61613

What it shows, without sleeping to see whether something arrives: a message sent outside
the transaction after the transactional ones overtakes them, because the broker holds them
back until COMMIT; after an ABORT, or an exception inside ``with client.transaction()``,
they never arrive. Acks inside a transaction count only once it commits.

Broker differences to know: RabbitMQ sends the RECEIPT of a SEND inside a transaction only
after COMMIT (so do not wait for one before committing), and the embedded broker at once.
"""

from __future__ import annotations

import contextlib
import sys
import uuid
from collections.abc import Iterator

import stompws
from stompws.testing import Broker

WAIT = 10.0  # seconds; anything slower is a failure, not a slow success


@contextlib.contextmanager
def broker_url(argv: list[str]) -> Iterator[str]:
    """The URL given on the command line, or the embedded broker's while it runs."""
    if argv:
        yield argv[0]
        return
    with Broker() as broker:
        print(f"no URL given: started the embedded test broker on {broker.ws_url}")
        yield broker.ws_url


def texts(subscription: stompws.Subscription, count: int) -> list[str]:
    """The next ``count`` message bodies, each acknowledged."""
    received = []
    for _ in range(count):
        frame = subscription.get(timeout=WAIT)
        frame.ack()
        received.append(frame.text)
    return received


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    queue = f"/queue/ledger-{uuid.uuid4().hex[:8]}"
    with broker_url(argv) as url, stompws.Client(url, heartbeats=(0, 0)) as client:
        inbox = client.subscribe(queue, ack="client-individual", receipt=True)

        tx = client.begin()
        tx.send(queue, "debit 10")
        tx.send(queue, "credit 10")
        client.send(queue, "outside the transaction")
        print(f"sent two messages in transaction {tx.id}, then one outside it")
        print(f"first to arrive: {texts(inbox, 1)[0]!r} (the broker holds the others)")
        tx.commit()
        print(f"after COMMIT: {texts(inbox, 2)}")

        tx = client.begin()
        tx.send(queue, "never delivered")
        tx.abort()
        client.send(queue, "after the abort")
        print(f"after ABORT only this arrives: {texts(inbox, 1)[0]!r}")

        try:
            with client.transaction() as tx:
                tx.send(queue, "never delivered either")
                raise RuntimeError("something failed half-way")
        except RuntimeError as error:
            print(f"an exception inside 'with client.transaction()' aborted it: {error}")
        client.send(queue, "after the exception")
        print(f"and only this arrives: {texts(inbox, 1)[0]!r}")

        client.send(queue, "acked in a transaction")
        frame = inbox.get(timeout=WAIT)
        with client.transaction() as tx:
            tx.ack(frame)  # counts only when the with block commits
        print(f"received {frame.text!r} and acknowledged it in a committed transaction")
    print("disconnected")
    return 0


if __name__ == "__main__":
    sys.exit(main())
