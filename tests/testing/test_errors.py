"""ERROR and close: malformed frames, unknown commands, missing headers, limits, credentials.

Most of these need input that stompws.Client refuses to produce, so a raw peer writes it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import stompws
from stompws.testing import Broker

from .support import WAIT, RawPeer

Connect = Callable[..., stompws.Client]


Raw = Callable[..., RawPeer]


@pytest.fixture
def peer(url: str, raw: Raw) -> RawPeer:
    return raw(url)


def assert_error_then_close(peer: RawPeer, message: str, receipt_id: str | None = None) -> None:
    error = peer.expect("ERROR")
    assert error.headers["message"] == message, error
    assert error.headers.get("receipt-id") == receipt_id
    assert error.body, "the ERROR explains itself in its body"
    assert peer.closed(), "the broker closes the connection after ERROR"


def test_a_malformed_frame_gets_error_and_close(peer: RawPeer) -> None:
    peer.connect()
    peer.send(b"SEND\ndestination:/queue/a\nno colon here\n\nbody\x00")
    assert_error_then_close(peer, "malformed frame")


def test_an_unknown_command_gets_error_with_the_receipt_id(peer: RawPeer) -> None:
    peer.connect()
    peer.send_frame("FROBNICATE", {"receipt": "r-1"})
    assert_error_then_close(peer, "unknown command", receipt_id="r-1")


def test_a_client_cannot_send_broker_frames(peer: RawPeer) -> None:
    peer.connect()
    peer.send_frame("MESSAGE", {"destination": "/queue/a"})
    assert_error_then_close(peer, "unknown command")


@pytest.mark.parametrize(
    ("command", "headers", "message"),
    [
        ("SEND", {}, "missing destination header"),
        ("SUBSCRIBE", {"destination": "/queue/a"}, "missing id header"),
        ("SUBSCRIBE", {"id": "1"}, "missing destination header"),
        ("UNSUBSCRIBE", {}, "missing id header"),
        ("ACK", {}, "missing id header"),
        ("NACK", {}, "missing id header"),
        ("BEGIN", {}, "missing transaction header"),
        ("COMMIT", {}, "missing transaction header"),
        ("ABORT", {}, "missing transaction header"),
    ],
)
def test_missing_required_headers(
    peer: RawPeer, command: str, headers: dict[str, str], message: str
) -> None:
    peer.connect()
    peer.send_frame(command, {**headers, "receipt": "r-9"})
    assert_error_then_close(peer, message, receipt_id="r-9")


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        ([("SEND", {"destination": "/elsewhere/a"})], "unknown destination"),
        ([("SEND", {"destination": "/queue/"})], "unknown destination"),
        ([("SEND", {"destination": "/queue/a", "transaction": "t"})], "unknown transaction"),
        ([("COMMIT", {"transaction": "t"})], "unknown transaction"),
        (
            [("BEGIN", {"transaction": "t"}), ("BEGIN", {"transaction": "t"})],
            "duplicate transaction",
        ),
        (
            [("SUBSCRIBE", {"id": "1", "destination": "/queue/a"})] * 2,
            "duplicate subscription",
        ),
        ([("SUBSCRIBE", {"id": "1", "destination": "/queue/a", "ack": "x"})], "invalid ack mode"),
        (
            [("SUBSCRIBE", {"id": "1", "destination": "/queue/a", "prefetch-count": "-1"})],
            "invalid prefetch-count",
        ),
        (
            [("SUBSCRIBE", {"id": "1", "destination": "/queue/a", "prefetch-count": "9" * 5000})],
            "invalid prefetch-count",
        ),
        ([("UNSUBSCRIBE", {"id": "nope"})], "no such subscription"),
        ([("ACK", {"id": "ack-404"})], "unknown ack id"),
        ([("CONNECT", {"accept-version": "1.2"})], "already connected"),
    ],
)
def test_frames_the_broker_refuses(
    peer: RawPeer, frames: list[tuple[str, dict[str, str]]], message: str
) -> None:
    peer.connect()
    for command, headers in frames[:-1]:
        peer.send_frame(command, {**headers, "receipt": "ok"})
        peer.expect("RECEIPT")
    command, headers = frames[-1]
    peer.send_frame(command, {**headers, "receipt": "bad"})
    assert_error_then_close(peer, message, receipt_id="bad")


def test_an_ack_for_an_auto_subscription_is_refused(peer: RawPeer) -> None:
    peer.connect()
    peer.send_frame("SUBSCRIBE", {"id": "s", "destination": "/queue/auto-ack"})
    peer.send_frame("SEND", {"destination": "/queue/auto-ack"}, b"x")
    message = peer.expect("MESSAGE")
    peer.send_frame("ACK", {"id": message.headers["message-id"]})
    assert_error_then_close(peer, "unknown ack id")


def test_stomp_1_1_ack_needs_message_id_and_subscription(url: str, raw: Raw) -> None:
    peer = raw(url)
    peer.connect(accept_version="1.1")
    peer.send_frame("SUBSCRIBE", {"id": "s", "destination": "/queue/v11", "ack": "client"})
    peer.send_frame("SEND", {"destination": "/queue/v11"}, b"x")
    message = peer.expect("MESSAGE")
    assert "ack" not in message.headers  # the ack header is STOMP 1.2's
    peer.send_frame("ACK", {"message-id": message.headers["message-id"], "receipt": "1"})
    assert_error_then_close(peer, "missing subscription header", receipt_id="1")


def test_nack_does_not_exist_in_stomp_1_0(broker: Broker, raw: Raw) -> None:
    peer = raw(broker.tcp_url, version="1.0")
    connected = peer.connect(accept_version="1.0")
    assert connected.headers["version"] == "1.0"
    assert "heart-beat" not in connected.headers
    peer.send_frame("NACK", {"message-id": "msg-1"})
    assert_error_then_close(peer, "unknown command")


def test_the_first_frame_must_be_connect(peer: RawPeer) -> None:
    peer.send_frame("SEND", {"destination": "/queue/a", "receipt": "r"})
    assert_error_then_close(peer, "expected CONNECT", receipt_id="r")


def test_a_malformed_heart_beat_header_is_refused(peer: RawPeer) -> None:
    peer.send_frame("CONNECT", {"accept-version": "1.2", "heart-beat": "soon"})
    assert_error_then_close(peer, "malformed heart-beat header")


def test_frames_over_the_limit_get_error_and_close(
    brokers: Callable[..., Broker], raw: Raw
) -> None:
    broker = brokers(max_frame_size=1000)
    for peer in (raw(broker.tcp_url), raw(broker.ws_url)):
        peer.connect()
        peer.send_frame("SEND", {"destination": "/queue/big"}, b"x" * 1000)
        error = peer.expect("ERROR")
        assert error.headers["message"] == "malformed frame"
        assert b"max_frame_size=1000" in error.body
        assert peer.closed()


def test_an_oversized_send_fails_the_clients_receipt(
    brokers: Callable[..., Broker], clients: Connect
) -> None:
    broker = brokers(max_frame_size=1000)
    for url in broker.urls:
        client = clients(url)
        receipt = client.send("/queue/big", b"x" * 2000, receipt=True)
        assert receipt is not None
        # The broker could not read the frame, so its ERROR names no receipt: the receipt
        # fails because the connection ended, and that end was caused by the ERROR.
        with pytest.raises(stompws.ConnectionClosed, match="malformed frame") as caught:
            receipt.wait(WAIT)
        assert isinstance(caught.value.__cause__, stompws.BrokerError)


def test_an_error_answers_the_clients_receipt(url: str, clients: Connect) -> None:
    client = clients(url)
    receipt = client.send("/nowhere", "x", receipt=True)
    assert receipt is not None
    with pytest.raises(stompws.BrokerError, match="unknown destination") as caught:
        receipt.wait(WAIT)
    assert caught.value.frame.headers["receipt-id"] == receipt.id


@pytest.mark.parametrize("transport", ["ws", "tcp"])
def test_bad_credentials_are_refused(
    brokers: Callable[..., Broker], transport: str, clients: Connect
) -> None:
    broker = brokers(users={"alice": "secret"})
    url = broker.ws_url if transport == "ws" else broker.tcp_url
    for login, passcode in (("alice", "wrong"), ("bob", "secret"), (None, None)):
        with pytest.raises(stompws.BrokerError, match="Access refused"):
            clients(url, login=login, passcode=passcode)
    client = clients(url, login="alice", passcode="secret")
    assert client.is_connected
    assert [info.login for info in broker.wait_for_connections(1)] == ["alice"]


def test_no_common_version_is_refused_with_the_supported_ones(
    brokers: Callable[..., Broker], raw: Raw
) -> None:
    broker = brokers(versions=("1.2",))
    peer = raw(broker.tcp_url, version="1.1")
    peer.send_frame("CONNECT", {"accept-version": "1.0,1.1"})
    error = peer.expect("ERROR")
    assert error.headers["message"] == "unsupported STOMP version"
    assert error.headers["version"] == "1.2"
    assert peer.closed()


def test_a_stomp_1_0_connect_to_a_broker_without_1_0_is_refused(
    brokers: Callable[..., Broker], clients: Connect
) -> None:
    broker = brokers(versions=("1.1", "1.2"))
    with pytest.raises(stompws.BrokerError, match="unsupported STOMP version"):
        clients(broker.tcp_url, versions=("1.0",))


def test_an_error_ends_the_session_and_redelivers(url: str, raw: Raw, clients: Connect) -> None:
    peer = raw(url)
    peer.connect()
    peer.send_frame("SUBSCRIBE", {"id": "s", "destination": "/queue/err", "ack": "client"})
    producer = clients(url)
    producer.send("/queue/err", "work")
    peer.expect("MESSAGE")
    peer.send_frame("BOGUS")
    assert_error_then_close(peer, "unknown command")
    again = clients(url).subscribe("/queue/err")
    assert again.get(WAIT).headers["redelivered"] == "true"
