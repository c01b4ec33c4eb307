"""What a misbehaving broker cannot make grow without bound: buffers in bytes, pending
receipts, warnings about subscriptions the client never made."""

from __future__ import annotations

import logging

import pytest

import stompws
from stompws import ReceiptTimeout

from .fakes import Peer, fake_broker

SIZE = 256 * 1024
COUNT = 20
BUDGET = 1024 * 1024


def client_for(url: str) -> stompws.Client:
    return stompws.Client(url, heartbeats=(0, 0), connect_timeout=5.0)


def test_a_buffer_is_bounded_in_bytes_and_loses_nothing() -> None:
    def script(peer: Peer) -> None:
        peer.accept_connect()
        subscribe = peer.frame()
        assert subscribe is not None and subscribe.command == "SUBSCRIBE"
        for number in range(COUNT):
            headers = {"subscription": subscribe.headers["id"], "message-id": str(number)}
            peer.send_frame("MESSAGE", headers, bytes([number]) * SIZE)
        peer.answer_receipts_until_disconnect()

    with fake_broker(script) as broker:
        client = client_for(broker.url)
        client.connect()
        subscription = client.subscribe("/q", max_buffered_bytes=BUDGET)
        bodies = []
        for _ in range(COUNT):
            count, held = subscription.buffered
            # The budget holds at every moment the reader can be seen from here.
            assert held <= BUDGET and count <= BUDGET // SIZE, (count, held)
            bodies.append(subscription.get(5).body)
        assert bodies == [bytes([number]) * SIZE for number in range(COUNT)]
        assert subscription.discarded == 0
        client.disconnect()


def test_a_frame_larger_than_the_budget_still_passes_alone() -> None:
    def script(peer: Peer) -> None:
        peer.accept_connect()
        subscribe = peer.frame()
        assert subscribe is not None
        headers = {"subscription": subscribe.headers["id"], "message-id": "1"}
        peer.send_frame("MESSAGE", headers, b"x" * (2 * BUDGET))
        peer.answer_receipts_until_disconnect()

    with fake_broker(script) as broker:
        client = client_for(broker.url)
        client.connect()
        subscription = client.subscribe("/q", max_buffered_bytes=BUDGET)
        assert len(subscription.get(5).body) == 2 * BUDGET
        client.disconnect()


def test_receipts_the_broker_never_answers_are_given_up_past_a_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("stompws.client.MAX_PENDING_RECEIPTS", 5)

    def script(peer: Peer) -> None:
        peer.accept_connect()
        while (frame := peer.frame()) is not None:
            if frame.command == "DISCONNECT":
                peer.send_frame("RECEIPT", {"receipt-id": frame.headers["receipt"]})
                return

    with fake_broker(script) as broker:
        client = client_for(broker.url)
        client.connect()
        # A burst nobody gave up on is kept whole, past the bound.
        burst = [client.send("/q", "x", receipt=True) for _ in range(8)]
        assert not any(r is not None and r.done for r in burst)
        # Receipts whose wait ran out are the ones given up, oldest first.
        for receipt in burst[:3]:
            assert receipt is not None
            with pytest.raises(ReceiptTimeout, match="within"):
                receipt.wait(0)
        later = [client.send("/q", "x", receipt=True) for _ in range(3)]
        given_up = [r for r in burst if r is not None and r.done]
        assert given_up == burst[:3]
        for receipt in given_up:
            with pytest.raises(ReceiptTimeout, match="given up"):
                receipt.wait(0)
        assert not any(r is not None and r.done for r in burst[3:] + later)
        client.disconnect()


def test_messages_for_unknown_subscriptions_warn_a_bounded_number_of_times(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def script(peer: Peer) -> None:
        peer.accept_connect()
        data = b"".join(
            stompws.Frame(
                "MESSAGE", {"subscription": f"made-up-{n}", "message-id": str(n)}, b"x"
            ).encode("1.2")
            for n in range(3000)
        )
        peer.send(data)
        peer.answer_receipts_until_disconnect()

    with caplog.at_level(logging.WARNING, logger="stompws.client"), fake_broker(script) as broker:
        client = client_for(broker.url)
        client.connect()
        # A receipt after the MESSAGEs: all of them were handled when it arrives.
        receipt = client.send("/q", "sentinel", receipt=True)
        assert receipt is not None
        receipt.wait(10)
        client.disconnect()
    warnings = [r for r in caplog.records if "did not make" in r.getMessage()]
    assert 100 <= len(warnings) <= 105, len(warnings)
