"""The embedded broker's messaging semantics, driven through stompws.Client over WebSocket
and TCP: queues, topics, ack modes, redelivery, transactions, receipts, headers."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import stompws
from stompws import Frame
from stompws.testing import Broker

from .support import WAIT

Connect = Callable[..., stompws.Client]


def send_marker(client: stompws.Client, destination: str) -> None:
    """A last message, so that a test can see that nothing else came before it."""
    receipt = client.send(destination, "marker", receipt=True)
    assert receipt is not None
    receipt.wait(WAIT)


def next_text(subscription: stompws.Subscription) -> str:
    return subscription.get(WAIT).text


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [(("1.0",), "1.0"), (("1.0", "1.1"), "1.1"), (("1.1", "1.2"), "1.2"), (("1.2",), "1.2")],
)
def test_connect_negotiates_the_highest_common_version(
    url: str, offered: tuple[str, ...], chosen: str, clients: Connect
) -> None:
    client = clients(url, versions=offered)
    assert client.version == chosen
    assert client.session is not None and client.session.startswith("session-")
    assert client.server is not None and client.server.startswith("stompws-testbroker/")


def test_connections_are_listed_with_their_session(
    broker: Broker, url: str, clients: Connect
) -> None:
    client = clients(url, login="alice", passcode="x")
    (info,) = broker.wait_for_connections(1)
    assert info.session == client.session
    assert info.login == "alice"
    assert info.version == "1.2"
    assert info.transport == ("ws" if url.startswith("ws") else "tcp")
    assert info.subprotocol == ("v12.stomp" if info.transport == "ws" else None)


def test_a_queue_gives_each_message_to_one_consumer_in_turn(url: str, clients: Connect) -> None:
    first, second, producer = clients(url), clients(url), clients(url)
    a = first.subscribe("/queue/rr", receipt=True)
    b = second.subscribe("/queue/rr", receipt=True)
    for number in range(4):
        producer.send("/queue/rr", f"m{number}")
    send_marker(producer, "/queue/rr")
    assert [next_text(a), next_text(a)] == ["m0", "m2"]
    assert [next_text(b), next_text(b)] == ["m1", "m3"]
    assert next_text(a) == "marker"  # its turn again


def test_a_topic_gives_every_subscriber_a_copy(url: str, clients: Connect) -> None:
    first, second = clients(url), clients(url)
    a = first.subscribe("/topic/news", receipt=True)
    b = second.subscribe("/topic/news", receipt=True)
    first.send("/topic/news", "hello all")
    assert next_text(a) == "hello all"
    assert next_text(b) == "hello all"


def test_a_topic_without_subscribers_drops_messages(url: str, clients: Connect) -> None:
    client = clients(url)
    send_marker(client, "/topic/empty")  # nobody listens: gone
    sub = client.subscribe("/topic/empty", receipt=True)
    client.send("/topic/empty", "after")
    assert next_text(sub) == "after"


def test_a_queue_keeps_messages_until_someone_subscribes(
    broker: Broker, url: str, clients: Connect
) -> None:
    producer = clients(url)
    for number in range(3):
        producer.send("/queue/kept", f"m{number}")
    send_marker(producer, "/queue/kept")
    assert broker.queue_depth("/queue/kept") == 4
    consumer = clients(url)
    sub = consumer.subscribe("/queue/kept")
    assert [next_text(sub) for _ in range(4)] == ["m0", "m1", "m2", "marker"]
    assert broker.queue_depth("/queue/kept") == 0


def test_message_frames_carry_the_senders_headers(url: str, clients: Connect) -> None:
    client = clients(url)
    sub = client.subscribe("/queue/h", ack="client-individual", id="s1")
    tx = client.begin()
    tx.send(
        "/queue/h",
        "{}",
        headers={"x-trace": "abc:1", "priority": "4"},
        content_type="application/json",
    )
    tx.commit(receipt=True)
    frame = sub.get(WAIT)
    headers = frame.headers
    assert headers["destination"] == "/queue/h"
    assert headers["subscription"] == "s1"
    assert headers["message-id"].startswith("msg-")
    assert headers["ack"].startswith("ack-")  # STOMP 1.2, ack mode not auto
    assert headers["content-type"] == "application/json"
    assert headers["content-length"] == "2"
    assert headers["x-trace"] == "abc:1"
    assert headers["priority"] == "4"
    assert "transaction" not in headers and "receipt" not in headers
    assert "redelivered" not in headers
    frame.ack()


def test_auto_ack_messages_have_no_ack_header(url: str, clients: Connect) -> None:
    client = clients(url)
    sub = client.subscribe("/queue/auto")
    client.send("/queue/auto", "x")
    assert "ack" not in sub.get(WAIT).headers


def test_bodies_with_nul_and_non_utf8_bytes_arrive_intact(url: str, clients: Connect) -> None:
    client = clients(url)
    sub = client.subscribe("/queue/bin")
    body = bytes(range(256)) * 3
    client.send("/queue/bin", body)
    assert sub.get(WAIT).body == body


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_client_ack_is_cumulative(url: str, version: str, clients: Connect) -> None:
    consumer, producer = clients(url, versions=(version,)), clients(url)
    sub = consumer.subscribe("/queue/cumulative", ack="client")
    for number in range(3):
        producer.send("/queue/cumulative", f"m{number}")
    frames = [sub.get(WAIT) for _ in range(3)]
    consumer.ack(frames[1], receipt=True)  # acks m0 and m1
    consumer.disconnect()
    again = clients(url).subscribe("/queue/cumulative")
    redelivered = again.get(WAIT)
    assert redelivered.text == "m2"
    assert redelivered.headers["redelivered"] == "true"
    assert redelivered.headers["message-id"] == frames[2].headers["message-id"]
    send_marker(producer, "/queue/cumulative")
    assert next_text(again) == "marker"


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_client_individual_ack_acks_only_that_message(
    url: str, version: str, clients: Connect
) -> None:
    consumer, producer = clients(url, versions=(version,)), clients(url)
    sub = consumer.subscribe("/queue/individual", ack="client-individual")
    for number in range(3):
        producer.send("/queue/individual", f"m{number}")
    frames = [sub.get(WAIT) for _ in range(3)]
    consumer.ack(frames[1], receipt=True)
    consumer.disconnect()
    again = clients(url).subscribe("/queue/individual")
    assert [next_text(again), next_text(again)] == ["m0", "m2"]
    send_marker(producer, "/queue/individual")
    assert next_text(again) == "marker"


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_nack_redelivers_marked_redelivered(url: str, version: str, clients: Connect) -> None:
    client = clients(url, versions=(version,))
    sub = client.subscribe("/queue/nack", ack="client-individual")
    client.send("/queue/nack", "try again")
    first = sub.get(WAIT)
    assert "redelivered" not in first.headers
    first.nack()
    second = sub.get(WAIT)
    assert second.text == "try again"
    assert second.headers["redelivered"] == "true"
    second.ack()
    send_marker(client, "/queue/nack")
    assert next_text(sub) == "marker"


def test_nack_in_client_mode_is_cumulative(url: str, clients: Connect) -> None:
    client = clients(url)
    sub = client.subscribe("/queue/nack-all", ack="client")
    for number in range(3):
        client.send("/queue/nack-all", f"m{number}")
    frames = [sub.get(WAIT) for _ in range(3)]
    frames[1].nack()  # m0 and m1 come back, in order; m2 stays with us
    again = [sub.get(WAIT) for _ in range(2)]
    assert [f.text for f in again] == ["m0", "m1"]
    assert all(f.headers["redelivered"] == "true" for f in again)


def test_a_topic_subscriber_gets_its_nacked_message_again(url: str, clients: Connect) -> None:
    client, other = clients(url), clients(url)
    mine = client.subscribe("/topic/t", ack="client-individual", receipt=True)
    theirs = other.subscribe("/topic/t", receipt=True)
    client.send("/topic/t", "once")
    mine.get(WAIT).nack()
    assert mine.get(WAIT).headers["redelivered"] == "true"
    assert next_text(theirs) == "once"
    send_marker(client, "/topic/t")
    assert next_text(theirs) == "marker"  # the NACK redelivered to the NACKing subscriber only


def test_unacked_messages_go_to_the_next_consumer_when_one_disconnects(
    url: str, clients: Connect
) -> None:
    leaving, staying, producer = clients(url), clients(url), clients(url)
    gone = leaving.subscribe("/queue/handover", ack="client-individual", receipt=True)
    producer.send("/queue/handover", "work")
    assert next_text(gone) == "work"
    kept = staying.subscribe("/queue/handover", receipt=True)
    leaving.disconnect()
    frame = kept.get(WAIT)
    assert (frame.text, frame.headers["redelivered"]) == ("work", "true")


def test_unsubscribe_puts_unacked_messages_back(url: str, clients: Connect) -> None:
    client = clients(url)
    first = client.subscribe("/queue/unsub", ack="client", receipt=True)
    client.send("/queue/unsub", "work")
    assert next_text(first) == "work"
    first.unsubscribe(receipt=True)
    second = client.subscribe("/queue/unsub")
    assert second.get(WAIT).headers["redelivered"] == "true"


def test_auto_ack_messages_are_not_redelivered(url: str, clients: Connect) -> None:
    consumer, producer = clients(url), clients(url)
    sub = consumer.subscribe("/queue/auto-gone", receipt=True)
    producer.send("/queue/auto-gone", "once")
    assert next_text(sub) == "once"
    consumer.disconnect()
    send_marker(producer, "/queue/auto-gone")
    assert next_text(clients(url).subscribe("/queue/auto-gone")) == "marker"


def test_prefetch_count_limits_unacked_messages(broker: Broker, url: str, clients: Connect) -> None:
    client = clients(url)
    sub = client.subscribe(
        "/queue/prefetch", ack="client-individual", headers={"prefetch-count": "1"}
    )
    for number in range(3):
        client.send("/queue/prefetch", f"m{number}")
    send_marker(client, "/queue/prefetch")
    first = sub.get(WAIT)
    assert broker.queue_depth("/queue/prefetch") == 3
    first.ack()
    assert next_text(sub) == "m1"


def test_sends_in_a_transaction_wait_for_commit(url: str, clients: Connect) -> None:
    client = clients(url)
    sub = client.subscribe("/queue/tx")
    tx = client.begin()
    tx.send("/queue/tx", "in tx")
    client.send("/queue/tx", "outside")
    assert next_text(sub) == "outside"
    tx.commit()
    assert next_text(sub) == "in tx"


def test_an_aborted_transaction_sends_nothing(url: str, clients: Connect) -> None:
    client = clients(url)
    sub = client.subscribe("/queue/abort")
    tx = client.begin()
    tx.send("/queue/abort", "never")
    tx.abort(receipt=True)
    send_marker(client, "/queue/abort")
    assert next_text(sub) == "marker"


def test_acks_in_a_transaction_take_effect_at_commit_only(url: str, clients: Connect) -> None:
    consumer, producer = clients(url), clients(url)
    sub = consumer.subscribe("/queue/tx-ack", ack="client-individual")
    producer.send("/queue/tx-ack", "a")
    producer.send("/queue/tx-ack", "b")
    a, b = sub.get(WAIT), sub.get(WAIT)
    aborted = consumer.begin()
    aborted.ack(a)
    aborted.abort()
    committed = consumer.begin()
    committed.ack(b)
    committed.commit(receipt=True)
    consumer.disconnect()
    again = clients(url).subscribe("/queue/tx-ack")
    assert next_text(again) == "a"  # its ACK was aborted; b's was committed
    send_marker(producer, "/queue/tx-ack")
    assert next_text(again) == "marker"


def test_every_frame_can_ask_for_a_receipt(url: str, clients: Connect) -> None:
    client = clients(url)
    receipts: list[Frame] = []

    class Receipts(stompws.Listener):
        def on_receipt(self, frame: Frame) -> None:
            receipts.append(frame)

    client.add_listener(Receipts())
    sub = client.subscribe("/queue/r", ack="client", receipt=True)
    tx = client.begin()
    handles = [
        client.send("/queue/r", "x", receipt=True),
        tx.send("/queue/r", "y", receipt=True),
        tx.commit(receipt=True),
    ]
    for handle in handles:
        assert handle is not None
        assert handle.wait(WAIT).command == "RECEIPT"
    frame = sub.get(WAIT)
    client.ack(frame, receipt=True)
    unsubscribed = sub.unsubscribe(receipt=True)
    assert unsubscribed is not None
    unsubscribed.wait(WAIT)
    client.disconnect()
    # subscribe, send, send in tx, commit, ack, unsubscribe, disconnect
    assert len(receipts) == 7
    assert len({r.headers["receipt-id"] for r in receipts}) == 7


def test_headers_are_escaped_for_each_subscribers_version(url: str, clients: Connect) -> None:
    producer = clients(url, versions=("1.2",))
    old = clients(url, versions=("1.0",)).subscribe("/topic/esc", receipt=True)
    newer = clients(url, versions=("1.1",)).subscribe("/topic/esc", receipt=True)
    producer.send("/topic/esc", "x", headers={"note": "a:b\nc", "plain": "p:q"})
    frame_11 = newer.get(WAIT)
    assert frame_11.headers["note"] == "a:b\nc"
    frame_10 = old.get(WAIT)
    assert "note" not in frame_10.headers  # STOMP 1.0 cannot carry a line break in a header
    assert frame_10.headers["plain"] == "p:q"
