"""Subscriptions the broker ends while the client goes on, replayed by a fake peer.

RabbitMQ 3.10 does both (tests/faults/test_operator.py shows it on the real broker):
- the queue a subscription reads is deleted: an ERROR with a ``subscription`` header, and
  the connection stays open;
- a reconnect's resubscription to a queue that is gone: an ERROR (``not_found``, without
  the receipt id), the RECEIPT anyway, then the close.

Before, the first left a dead subscription that looked live (``get()`` only timed out), and
the second made every later reconnect repeat the refused SUBSCRIBE and be closed again.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

import stompws
from stompws import BrokerError, ConnectionClosed, Frame, Reconnect, Subscription

from ..fakes import FakeBroker, Peer, fake_broker
from ..support.recording import Recorder
from .conftest import ClientFactory
from .support import WAIT

GONE = "/amq/queue/deleted"
KEPT = "/queue/kept"


def test_a_subscription_the_broker_cancels_ends_with_its_error(
    make_client: ClientFactory,
) -> None:
    def cancels_after_one_message(peer: Peer) -> None:
        peer.accept_connect()
        subscribe = peer.frame()
        assert subscribe is not None and subscribe.command == "SUBSCRIBE", subscribe
        sub_id = subscribe.headers["id"]
        peer.send_frame("RECEIPT", {"receipt-id": subscribe.headers["receipt"]})
        message = {"subscription": sub_id, "message-id": "m1", "destination": GONE}
        peer.send_frame("MESSAGE", message, b"before")
        peer.send_frame(
            "ERROR",
            {"message": "Server cancelled subscription", "subscription": sub_id},
            b"The server has canceled a subscription.",
        )
        peer.answer_receipts_until_disconnect()

    with fake_broker(cancels_after_one_message) as broker:
        recorder = Recorder()
        client = make_client(broker.url)
        client.add_listener(recorder)
        client.connect()
        subscription = client.subscribe(GONE, receipt=True)
        assert subscription.get(WAIT).text == "before"  # what came first is not lost
        with pytest.raises(BrokerError, match="Server cancelled subscription"):
            subscription.get(WAIT)
        [error] = recorder.wait_for("error")
        assert error.headers["subscription"] == subscription.id
        assert not subscription.active
        assert client.subscriptions == []
        assert client.is_connected  # the broker keeps the connection: so does the client
        receipt = client.send(KEPT, "still connected", receipt=True)
        assert receipt is not None
        receipt.wait(WAIT)
        client.disconnect()


class Asked:
    """The destinations each connection to the fake broker was asked to subscribe to."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.connections: list[list[str]] = []

    def subscribes(self, peer: Peer) -> Iterator[tuple[int, list[str], Frame]]:
        """After CONNECTED: (the connection's number, what it asked so far, the frame) for
        each SUBSCRIBE, up to the first other frame (the test's own: its receipt answered)
        or the close."""
        with self.lock:
            asked: list[str] = []
            self.connections.append(asked)
            number = len(self.connections)
        peer.accept_connect()
        while True:
            frame = peer.frame()
            if frame is None:
                return
            if frame.command != "SUBSCRIBE":
                if "receipt" in frame.headers:
                    peer.send_frame("RECEIPT", {"receipt-id": frame.headers["receipt"]})
                return
            with self.lock:
                asked.append(frame.headers["destination"])
            yield number, asked, frame


def _reconnecting_with_two_subscriptions(
    make_client: ClientFactory, broker: FakeBroker
) -> tuple[stompws.Client, Recorder, Subscription, Subscription]:
    """A client with reconnect, subscribed to KEPT, then GONE (in that order: resubscribed so)."""
    recorder = Recorder()
    client = make_client(broker.url, reconnect=Reconnect(initial=0.05, maximum=0.2))
    client.add_listener(recorder)
    client.connect()
    return (
        client,
        recorder,
        client.subscribe(KEPT, receipt=True),
        client.subscribe(GONE, receipt=True),
    )


# How a broker refuses a SUBSCRIBE to a queue that no longer exists.
NAMES_THE_RECEIPT = "activemq"  # an ERROR with the SUBSCRIBE's receipt id
ERROR_RECEIPT_CLOSE = "rabbitmq-tcp"  # an ERROR without it, the RECEIPT anyway, the close
SILENT_CLOSE = "rabbitmq-web-stomp"  # the close alone (WebSocket close 1000, "STOMP died")


@pytest.mark.parametrize("refusal", [NAMES_THE_RECEIPT, ERROR_RECEIPT_CLOSE, SILENT_CLOSE])
def test_a_refused_resubscription_ends_that_subscription_and_the_reconnect_goes_on(
    make_client: ClientFactory, refusal: str
) -> None:
    """The queue of one of two subscriptions is deleted while the client is away; each
    reconnect's resubscriptions ask for receipts, so the refused one ends alone. A refusal
    that says nothing (RabbitMQ's Web STOMP) is recognised by its place: the first
    resubscription left unanswered by the close, at two closes in a row."""
    asked = Asked()

    def deletes_a_queue_between_connections(peer: Peer) -> None:
        for number, so_far, frame in asked.subscribes(peer):
            destination = frame.headers["destination"]
            receipt = frame.headers.get("receipt", "")
            if number > 1:
                assert receipt, f"a resubscription without receipt: {frame}"
            if number == 1 or destination != GONE:
                peer.send_frame("RECEIPT", {"receipt-id": receipt})
                if number == 1 and len(so_far) == 2:
                    return  # the script's end closes the connection: the client reconnects
                continue
            if refusal != SILENT_CLOSE:
                named = {"receipt-id": receipt} if refusal == NAMES_THE_RECEIPT else {}
                error = {**named, "message": "not_found"}
                peer.send_frame("ERROR", error, b"NOT_FOUND - no queue 'deleted' in vhost '/'")
                if refusal == ERROR_RECEIPT_CLOSE:
                    peer.send_frame("RECEIPT", {"receipt-id": receipt})
            else:
                peer.connection.ws_close(1000, "STOMP died")
            return  # and closes
        peer.answer_receipts_until_disconnect()

    transport = "ws" if refusal == SILENT_CLOSE else "tcp"
    refused_at = 2 if refusal == SILENT_CLOSE else 1  # closes before it is taken as refused
    with fake_broker(deletes_a_queue_between_connections, transport) as broker:
        client, recorder, kept, gone = _reconnecting_with_two_subscriptions(make_client, broker)
        expected = (
            (ConnectionClosed, "refuses") if refusal == SILENT_CLOSE else (BrokerError, "not_found")
        )
        with pytest.raises(expected[0], match=expected[1]):
            gone.get(WAIT)
        # A refusal that names the receipt ends the subscription before the broker's close:
        # the next connection, without it, is the one to send on.
        recorder.wait_for("connected", 2 + refused_at)
        assert client.subscriptions == [kept]
        receipt = client.send(KEPT, "after", receipt=True)
        assert receipt is not None
        receipt.wait(WAIT)
        assert client.is_connected
        client.disconnect()
    assert asked.connections == [
        [KEPT, GONE],
        *[[KEPT, GONE]] * refused_at,
        [KEPT],  # the refused one is not asked for again
    ]


def test_losses_without_a_close_frame_never_count_as_a_refusal(
    make_client: ClientFactory,
) -> None:
    """A network that fails right after each reconnect's resubscriptions, at the same place
    every time, is no broker refusing: the subscription stays, and is made again."""
    cuts = 3
    asked = Asked()

    def cut_after_the_first_resubscription(peer: Peer) -> None:
        for number, so_far, frame in asked.subscribes(peer):
            if 1 < number <= 1 + cuts and len(so_far) == 2:
                return  # closed without a WebSocket close, before answering this one
            peer.send_frame("RECEIPT", {"receipt-id": frame.headers["receipt"]})
            if number == 1 and len(so_far) == 2:
                return
        peer.answer_receipts_until_disconnect()

    with fake_broker(cut_after_the_first_resubscription, "ws") as broker:
        client, recorder, kept, cut = _reconnecting_with_two_subscriptions(make_client, broker)
        recorder.wait_for("connected", 2 + cuts)
        receipt = client.send(KEPT, "after", receipt=True)
        assert receipt is not None
        receipt.wait(WAIT)
        assert client.subscriptions == [kept, cut]
        assert cut.active
        client.disconnect()
    assert asked.connections == [[KEPT, GONE]] * (2 + cuts)
