"""The sans-IO session: negotiation, heart-beat arithmetic, registries, states, per version."""

from __future__ import annotations

import itertools

import pytest

from stompws import Frame, NotConnected, ProtocolError, State, UsageError
from stompws.parser import FrameParser
from stompws.protocol import (
    ClientProtocol,
    Connected,
    ErrorReceived,
    Event,
    HeartbeatReceived,
    MessageReceived,
    ProtocolViolation,
    ReceiptReceived,
    SubscriptionInfo,
)

VERSIONS = ["1.0", "1.1", "1.2"]


def wire(command: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    return Frame(command, headers, body).encode("1.2", content_length=bool(body))


def sent(data: bytes) -> Frame:
    [frame] = FrameParser("1.2").feed(data)
    assert isinstance(frame, Frame)
    return frame


def connected(
    version: str = "1.2",
    *,
    heartbeats: tuple[int, int] = (0, 0),
    broker_heartbeat: str = "0,0",
    now: float = 0.0,
) -> ClientProtocol:
    protocol = ClientProtocol(heartbeats=heartbeats)
    protocol.connect(login="guest", passcode="guest")
    headers = {"version": version, "heart-beat": broker_heartbeat, "session": "s1", "server": "b/1"}
    if version == "1.0":
        del headers["version"]
    [event] = protocol.receive_data(wire("CONNECTED", headers), now)
    if isinstance(event, ProtocolViolation):
        raise event.error
    assert isinstance(event, Connected)
    return protocol


def violated(events: list[Event]) -> None:
    """Raise the protocol violation that ends ``events``, as a caller of the session would."""
    assert events, "no events at all"
    last = events[-1]
    assert isinstance(last, ProtocolViolation), f"no violation in {events}"
    assert not any(isinstance(event, ProtocolViolation) for event in events[:-1])
    raise last.error


def message(subscription: str, message_id: str = "m1", ack: str | None = "a1") -> Frame:
    headers = {"subscription": subscription, "message-id": message_id, "destination": "/q"}
    if ack is not None:
        headers["ack"] = ack
    return Frame("MESSAGE", headers, b"x")


# -- CONNECT ------------------------------------------------------------------------------


def test_connect_frame() -> None:
    protocol = ClientProtocol(heartbeats=(1000, 2000))
    out = protocol.connect(login="u", passcode="p", host="vh", headers={"client-id": "c"})
    assert out.data == (
        b"CONNECT\naccept-version:1.0,1.1,1.2\nhost:vh\nlogin:u\npasscode:p\n"
        b"heart-beat:1000,2000\nclient-id:c\n\n\x00"
    )
    assert protocol.state is State.CONNECTING


def test_connect_sends_no_host_unless_given() -> None:
    out = ClientProtocol().connect()
    assert "host" not in sent(out.data).headers


def test_connect_10_only_has_no_accept_version() -> None:
    out = ClientProtocol(versions=["1.0"]).connect(login="u")
    assert out.data == b"CONNECT\nlogin:u\n\n\x00"


def test_connect_extra_headers_override() -> None:
    out = ClientProtocol(versions=["1.1", "1.2"]).connect(headers=[("accept-version", "1.2")])
    assert sent(out.data).header_list == [("heart-beat", "0,0"), ("accept-version", "1.2")]


def test_connect_refuses_newline_in_passcode() -> None:
    with pytest.raises(UsageError, match="line break"):
        ClientProtocol().connect(passcode="a\nb")


def test_connect_only_once() -> None:
    protocol = ClientProtocol()
    protocol.connect()
    with pytest.raises(UsageError, match="once"):
        protocol.connect()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"versions": []}, "versions"),
        ({"versions": ["2.0"]}, "versions"),
        ({"heartbeats": (-1, 0)}, "heartbeats"),
        ({"heartbeats": (1.5, 0)}, "heartbeats"),
        ({"heartbeats": (1, 2, 3)}, "heartbeats"),
        ({"heartbeat_tolerance": 0.5}, "tolerance"),
    ],
)
def test_bad_settings(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        ClientProtocol(**kwargs)  # type: ignore[arg-type]


# -- CONNECTED ----------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_version_negotiation(version: str) -> None:
    protocol = connected(version)
    assert protocol.version == version
    assert protocol.state is State.CONNECTED
    assert protocol.session == "s1" and protocol.server == "b/1"


def test_version_not_offered_is_an_error() -> None:
    protocol = ClientProtocol(versions=["1.1", "1.2"])
    protocol.connect()
    with pytest.raises(ProtocolError, match="not offered"):
        violated(protocol.receive_data(wire("CONNECTED", {"session": "x"}), 0))  # no version: 1.0


def test_connected_is_never_unescaped() -> None:
    protocol = ClientProtocol()
    protocol.connect()
    [event] = protocol.receive_data(wire("CONNECTED", {"version": "1.2", "server": "a\\cb"}), 0)
    assert isinstance(event, Connected) and event.frame.headers["server"] == "a\\cb"


def test_unexpected_connected() -> None:
    protocol = connected()
    with pytest.raises(ProtocolError, match="CONNECTED frame while"):
        violated(protocol.receive_data(wire("CONNECTED", {"version": "1.2"}), 0))


def test_message_before_connected() -> None:
    protocol = ClientProtocol()
    protocol.connect()
    with pytest.raises(ProtocolError, match="before CONNECTED"):
        violated(protocol.receive_data(wire("MESSAGE", {"subscription": "x"}), 0))


def test_client_frames_from_the_broker_are_errors() -> None:
    protocol = connected()
    with pytest.raises(ProtocolError, match="does not send SEND"):
        violated(protocol.receive_data(wire("SEND", {"destination": "/q"}), 0))


def test_error_during_connect_closes() -> None:
    protocol = ClientProtocol()
    protocol.connect(login="bad")
    [event] = protocol.receive_data(wire("ERROR", {"message": "Access refused"}, b"no"), 0)
    assert isinstance(event, ErrorReceived) and event.receipt_id is None
    assert protocol.state is State.CLOSED


# -- heart-beats --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ours", "theirs", "send_interval", "receive_timeout"),
    [
        ((0, 0), "10000,10000", None, None),
        ((1000, 2000), "0,0", None, None),
        # send every max(1000, 500); expect max(2000, 3000) x 2 + a margin of min(3/4, 0.5)
        ((1000, 2000), "3000,500", 1.0, 6.5),
        ((5000, 0), "4000,4000", 5.0, None),
        ((0, 5000), "4000,4000", None, 10.5),
        ((100, 100), "0,7000", 7.0, None),
        ((100, 100), " 300 , 0 ", None, 0.675),
    ],
)
def test_heartbeat_negotiation(
    ours: tuple[int, int], theirs: str, send_interval: float | None, receive_timeout: float | None
) -> None:
    protocol = connected(heartbeats=ours, broker_heartbeat=theirs)
    assert protocol.send_interval == send_interval
    assert protocol.receive_timeout == pytest.approx(receive_timeout)


def test_no_heartbeats_in_10() -> None:
    protocol = connected("1.0", heartbeats=(1000, 1000), broker_heartbeat="1000,1000")
    assert protocol.send_interval is None and protocol.receive_timeout is None
    assert protocol.next_heartbeat_at() is None and protocol.silence_deadline() is None


@pytest.mark.parametrize("value", ["10", "a,b", "-1,5"])
def test_malformed_heartbeat_header(value: str) -> None:
    with pytest.raises(ProtocolError, match="heart-beat"):
        connected(heartbeats=(1, 1), broker_heartbeat=value)


def test_heartbeat_timing_with_plain_numbers() -> None:
    protocol = connected(heartbeats=(1000, 1000), broker_heartbeat="1000,1000", now=100.0)
    protocol.heartbeat_tolerance = 2.0
    protocol.note_sent(100.0)
    assert protocol.next_heartbeat_at() == 101.0
    assert not protocol.heartbeat_due(100.9)
    assert protocol.heartbeat_due(101.0)
    protocol.note_sent(101.0)
    assert not protocol.heartbeat_due(101.5)
    assert protocol.silence_deadline() == 102.25  # 2 x 1 s and a margin of a quarter interval
    assert not protocol.broker_silent(102.25)
    assert protocol.broker_silent(102.26)
    [event] = protocol.receive_data(b"\n", 102.0)
    assert isinstance(event, HeartbeatReceived)
    assert protocol.silence_deadline() == 104.25
    assert protocol.broker_silent(104.26)


def test_partial_frame_counts_as_life() -> None:
    protocol = connected(heartbeats=(1000, 1000), broker_heartbeat="1000,1000")
    assert protocol.receive_data(b"MESS", 50.0) == []
    assert protocol.last_received == 50.0


def test_tolerance_scales_the_deadline() -> None:
    protocol = ClientProtocol(heartbeats=(0, 1000), heartbeat_tolerance=3.0)
    protocol.connect()
    protocol.receive_data(wire("CONNECTED", {"version": "1.2", "heart-beat": "1000,0"}), 10.0)
    assert protocol.silence_deadline() == 13.25  # 3 x 1 s and the margin
    protocol.receive_data(b"\n", 11.0)
    assert protocol.silence_deadline() == 14.25


# -- subscriptions ------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_subscribe_and_message_routing(version: str) -> None:
    protocol = connected(version)
    info, out = protocol.subscribe("/queue/a", ack="client", headers={"prefetch-count": "5"})
    assert sent(out.data).header_list == [
        ("destination", "/queue/a"),
        ("id", info.id),
        ("ack", "client"),
        ("prefetch-count", "5"),
    ]
    [event] = protocol.receive_data(message(info.id).encode(version), 0)
    assert isinstance(event, MessageReceived) and event.subscription == info
    [event] = protocol.receive_data(message("not-ours").encode(version), 0)
    assert isinstance(event, MessageReceived) and event.subscription is None


def test_subscription_ids_are_unique() -> None:
    protocol = connected()
    ids = {protocol.subscribe("/q")[0].id for _ in range(5)}
    assert len(ids) == 5
    protocol.subscribe("/q", id="mine")
    with pytest.raises(UsageError, match="already in use"):
        protocol.subscribe("/q", id="mine")


def test_generated_ids_skip_ids_taken_by_the_caller() -> None:
    protocol = ClientProtocol()
    protocol.connect()
    protocol.receive_data(wire("CONNECTED", {"version": "1.2"}), 0)
    protocol.subscribe("/q", id="sub-1")
    assert protocol.subscribe("/q")[0].id != "sub-1"


def test_bad_ack_mode() -> None:
    with pytest.raises(UsageError, match="ack must be"):
        connected().subscribe("/q", ack="sometimes")


def test_client_individual_not_in_10() -> None:
    with pytest.raises(UsageError, match="client-individual"):
        connected("1.0").subscribe("/q", ack="client-individual")


def test_message_without_subscription_header_in_10() -> None:
    protocol = connected("1.0")
    info, _ = protocol.subscribe("/q")
    [event] = protocol.receive_data(wire("MESSAGE", {"message-id": "1"}), 0)
    assert isinstance(event, MessageReceived) and event.subscription == info


@pytest.mark.parametrize("version", VERSIONS)
def test_unsubscribe(version: str) -> None:
    protocol = connected(version)
    info, _ = protocol.subscribe("/q")
    frame = sent(protocol.unsubscribe(info.id).data)
    expected = [("id", info.id)] + ([("destination", "/q")] if version == "1.0" else [])
    assert frame.header_list == expected
    assert protocol.subscriptions == {}
    with pytest.raises(UsageError, match="no live subscription"):
        protocol.unsubscribe(info.id)


def test_resubscribe_keeps_id_and_headers() -> None:
    first = connected()
    info, out = first.subscribe("/q", ack="client-individual", headers={"x": "1"})
    second = connected()
    assert second.resubscribe(info).data == out.data
    assert second.subscriptions == {info.id: info}


# -- ACK / NACK ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("1.0", [("message-id", "m1")]),
        ("1.1", [("message-id", "m1"), ("subscription", "S")]),
        ("1.2", [("id", "a1")]),
    ],
)
def test_ack_headers_per_version(version: str, expected: list[tuple[str, str]]) -> None:
    protocol = connected(version)
    protocol.subscribe("/q", id="S", ack="client")
    assert sent(protocol.ack(message("S")).data).header_list == expected


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_nack_in_a_transaction(version: str) -> None:
    protocol = connected(version)
    protocol.subscribe("/q", id="S", ack="client-individual")
    tx, _ = protocol.begin()
    frame = sent(protocol.nack(message("S"), transaction=tx).data)
    assert frame.command == "NACK" and frame.headers["transaction"] == tx


def test_nack_does_not_exist_in_10() -> None:
    with pytest.raises(UsageError, match=r"NACK does not exist in STOMP 1\.0"):
        connected("1.0").nack(message("S"))


def test_ack_needs_a_message() -> None:
    with pytest.raises(UsageError, match="takes a MESSAGE"):
        connected().ack(Frame("RECEIPT", {"receipt-id": "1"}))


def test_ack_on_auto_subscription_is_refused() -> None:
    protocol = connected()
    protocol.subscribe("/q", id="S")
    with pytest.raises(UsageError, match="ack mode auto"):
        protocol.ack(message("S"))


@pytest.mark.parametrize(
    ("version", "frame", "missing"),
    [
        ("1.2", message("S", ack=None), "no ack header"),
        ("1.1", Frame("MESSAGE", {"subscription": "S"}), "no message-id"),
        ("1.1", Frame("MESSAGE", {"message-id": "m"}), "no subscription"),
    ],
)
def test_ack_with_missing_headers(version: str, frame: Frame, missing: str) -> None:
    protocol = connected(version)
    protocol.subscribe("/q", id="S", ack="client")
    with pytest.raises(UsageError, match=missing):
        protocol.ack(frame)


# -- receipts, transactions, send ---------------------------------------------------------


def test_send_frame() -> None:
    protocol = connected()
    out = protocol.send("/q", "h\u00e9", content_type="text/plain", headers={"k": "a:b"})
    assert out.data == (
        b"SEND\ndestination:/q\ncontent-type:text/plain\nk:a\\cb\ncontent-length:3\n\nh\xc3\xa9\x00"
    )
    assert out.receipt_id is None


def test_send_without_content_length() -> None:
    out = connected().send("/q", "text", content_length=False)
    assert out.data == b"SEND\ndestination:/q\n\ntext\x00"


def test_receipts_are_matched() -> None:
    protocol = connected()
    out = protocol.send("/q", b"x", receipt=True)
    assert out.receipt_id is not None and sent(out.data).headers["receipt"] == out.receipt_id
    assert protocol.pending_receipts == {out.receipt_id: "SEND"}
    [event] = protocol.receive_data(wire("RECEIPT", {"receipt-id": out.receipt_id}), 0)
    assert isinstance(event, ReceiptReceived) and event.expected
    assert protocol.pending_receipts == {}
    [event] = protocol.receive_data(wire("RECEIPT", {"receipt-id": "stranger"}), 0)
    assert isinstance(event, ReceiptReceived) and not event.expected


def test_error_answers_a_receipt() -> None:
    protocol = connected()
    out = protocol.send("/q", b"x", receipt=True)
    err = wire("ERROR", {"receipt-id": str(out.receipt_id), "message": "no"})
    [event] = protocol.receive_data(err, 0)
    assert isinstance(event, ErrorReceived) and event.receipt_id == out.receipt_id
    [event] = protocol.receive_data(wire("ERROR", {"receipt-id": "unknown"}), 0)
    assert isinstance(event, ErrorReceived) and event.receipt_id is None


def test_receipt_without_id_is_malformed() -> None:
    with pytest.raises(ProtocolError, match="receipt-id"):
        violated(connected().receive_data(wire("RECEIPT", {}), 0))


def test_transactions() -> None:
    protocol = connected()
    tx, out = protocol.begin()
    assert sent(out.data).header_list == [("transaction", tx)]
    assert list(protocol.transactions) == [tx]
    frame = sent(protocol.send("/q", b"x", transaction=tx).data)
    assert frame.headers["transaction"] == tx
    assert sent(protocol.commit(tx).data).command == "COMMIT"
    assert not protocol.transactions
    with pytest.raises(UsageError, match="no open transaction"):
        protocol.abort(tx)
    with pytest.raises(UsageError, match="no open transaction"):
        protocol.send("/q", b"x", transaction=tx)
    tx2, _ = protocol.begin("mine")
    with pytest.raises(UsageError, match="already open"):
        protocol.begin("mine")
    assert sent(protocol.abort(tx2).data).command == "ABORT"


# -- states -------------------------------------------------------------------------------


def test_nothing_before_connected() -> None:
    protocol = ClientProtocol()
    with pytest.raises(NotConnected, match="before the broker's CONNECTED"):
        protocol.send("/q", b"x")
    protocol.connect()
    with pytest.raises(NotConnected, match="before the broker's CONNECTED"):
        protocol.subscribe("/q")


def test_nothing_after_disconnect() -> None:
    protocol = connected()
    out = protocol.disconnect()
    assert protocol.state is State.DISCONNECTING
    assert sent(out.data).headers["receipt"] == out.receipt_id
    with pytest.raises(NotConnected, match="disconnecting"):
        protocol.send("/q", b"x")
    protocol.receive_data(wire("RECEIPT", {"receipt-id": str(out.receipt_id)}), 0)
    assert protocol.state is State.CLOSED
    with pytest.raises(NotConnected, match="closed"):
        protocol.begin()


def test_connection_lost_reports_what_is_pending() -> None:
    protocol = connected()
    info, _ = protocol.subscribe("/q")
    out = protocol.send("/q", b"x", receipt=True)
    tx, _ = protocol.begin()
    lost = protocol.connection_lost()
    assert lost.pending_receipts == {out.receipt_id: "SEND"}
    assert lost.open_transactions == (tx,)
    assert protocol.state is State.CLOSED
    assert protocol.subscriptions == {info.id: info}
    assert protocol.pending_receipts == {} and not protocol.transactions


def test_id_prefix() -> None:
    protocol = ClientProtocol(id_prefix="c7-")
    protocol.connect()
    protocol.receive_data(wire("CONNECTED", {"version": "1.2"}), 0)
    assert protocol.subscribe("/q")[0].id.startswith("c7-sub-")


def test_unsubscribe_with_extra_headers() -> None:
    protocol = connected()
    info, _ = protocol.subscribe("/topic/t", headers={"durable": "true"})
    frame = sent(protocol.unsubscribe(info.id, headers={"durable": "true"}).data)
    assert frame.header_list == [("id", info.id), ("durable", "true")]


def test_frames_before_a_violation_come_first_and_the_violation_last() -> None:
    protocol = connected()
    protocol.subscribe("/q", id="s")
    data = wire("MESSAGE", message("s").headers) + wire("MESSAGE", message("s", "m2").headers)
    events = protocol.receive_data(data + wire("RECEIPT", {}), 0)
    assert [type(event) for event in events] == [
        MessageReceived,
        MessageReceived,
        ProtocolViolation,
    ]
    assert protocol.state is State.CLOSED
    # Nothing is accepted after a violation: the same violation again.
    assert protocol.receive_data(wire("RECEIPT", {"receipt-id": "r"}), 1) == [events[-1]]


def test_parser_errors_keep_the_frames_before_them() -> None:
    protocol = connected()
    protocol.subscribe("/q", id="s")
    events = protocol.receive_data(wire("MESSAGE", message("s").headers) + b"BOGUS\n\n\x00", 0)
    assert [type(event) for event in events] == [MessageReceived, ProtocolViolation]


def test_ids_are_never_reused_by_later_sessions_of_one_counter() -> None:
    ids = itertools.count(1)
    first = ClientProtocol(ids=ids)
    first.connect()
    first.receive_data(wire("CONNECTED", {"version": "1.2"}), 0)
    tx_first, _ = first.begin()
    second = ClientProtocol(ids=ids)
    second.connect()
    second.receive_data(wire("CONNECTED", {"version": "1.2"}), 0)
    tx_second, _ = second.begin()
    assert tx_first != tx_second


def test_inherited_subscriptions_are_repeated_once_after_connected() -> None:
    info = SubscriptionInfo("s1", "/queue/a", "client", (("durable", "true"),))
    protocol = ClientProtocol(subscriptions=[info])
    protocol.connect()
    protocol.receive_data(wire("CONNECTED", {"version": "1.2"}), 0)
    [again] = protocol.resubscribe_all()
    assert again.frame.command == "SUBSCRIBE"
    assert again.frame.header_list == [
        ("destination", "/queue/a"),
        ("id", "s1"),
        ("ack", "client"),
        ("durable", "true"),
        ("receipt", again.receipt_id),
    ]
    assert protocol.resubscribe_all() == []
    with pytest.raises(UsageError, match="already in use"):
        protocol.subscribe("/queue/b", id="s1")


def test_receipt_ids_chosen_by_the_caller() -> None:
    protocol = connected()
    out = protocol.send("/q", "x", receipt="mine-1")
    assert out.receipt_id == "mine-1" and ("receipt", "mine-1") in out.frame.header_list
    with pytest.raises(UsageError, match="already waiting"):
        protocol.send("/q", "y", receipt="mine-1")


# -- subscriptions the broker ends ------------------------------------------------------------


def _next_session(previous: ClientProtocol) -> ClientProtocol:
    """The next connection of the same client: the previous session's subscriptions are
    inherited and repeated right after CONNECTED."""
    protocol = ClientProtocol(subscriptions=previous.subscriptions.values())
    protocol.connect(login="guest", passcode="guest")
    headers = {"version": "1.2", "heart-beat": "0,0"}
    [event] = protocol.receive_data(wire("CONNECTED", headers), 0)
    assert isinstance(event, Connected)
    return protocol


def test_resubscriptions_ask_for_a_receipt() -> None:
    first = connected()
    info, _ = first.subscribe("/amq/queue/q", ack="client-individual")
    second = _next_session(first)
    [out] = second.resubscribe_all()
    frame = sent(out.data)
    assert frame.headers["id"] == info.id and "receipt" in frame.headers
    assert out.receipt_id == frame.headers["receipt"]
    [event] = second.receive_data(wire("RECEIPT", {"receipt-id": frame.headers["receipt"]}), 0)
    assert isinstance(event, ReceiptReceived) and event.expected
    assert second.subscriptions == {info.id: info}


def test_an_error_answering_a_resubscription_names_its_receipt() -> None:
    """The session leaves the subscription in place: the caller ends it, as for a refused
    SUBSCRIBE of its own (a broker may also answer ERROR without the receipt id, then the
    RECEIPT, then close: only the caller sees all three)."""
    first = connected()
    gone, _ = first.subscribe("/amq/queue/deleted")
    kept, _ = first.subscribe("/queue/kept")
    second = _next_session(first)
    refused, accepted = (sent(out.data) for out in second.resubscribe_all())
    assert (refused.headers["id"], accepted.headers["id"]) == (gone.id, kept.id)
    error = wire("ERROR", {"receipt-id": refused.headers["receipt"], "message": "not_found"})
    [event] = second.receive_data(error, 0)
    assert isinstance(event, ErrorReceived)
    assert event.receipt_id == refused.headers["receipt"]
    assert event.ended_subscription is None
    second.forget_subscription(gone.id)
    third = _next_session(second)
    assert [sent(out.data).headers["id"] for out in third.resubscribe_all()] == [kept.id]


def test_an_error_naming_a_subscription_ends_it() -> None:
    """RabbitMQ's answer when the queue a subscription reads is deleted: an ERROR with a
    ``subscription`` header, and the connection stays open."""
    protocol = connected()
    cancelled, _ = protocol.subscribe("/amq/queue/q")
    other, _ = protocol.subscribe("/queue/other")
    cancel = {"message": "Server cancelled subscription", "subscription": cancelled.id}
    error = wire("ERROR", cancel)
    [event] = protocol.receive_data(error, 0)
    assert isinstance(event, ErrorReceived) and event.receipt_id is None
    assert event.ended_subscription == cancelled
    assert protocol.subscriptions == {other.id: other}
    assert protocol.state is State.CONNECTED


def test_an_error_naming_an_unknown_subscription_ends_none() -> None:
    protocol = connected()
    info, _ = protocol.subscribe("/q")
    [event] = protocol.receive_data(wire("ERROR", {"subscription": "not-ours"}), 0)
    assert isinstance(event, ErrorReceived) and event.ended_subscription is None
    assert protocol.subscriptions == {info.id: info}
