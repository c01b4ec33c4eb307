"""The WebSocket side: subprotocol choice, one frame per message, text and binary messages,
and frames split across or packed into messages by the client."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import websocket

from stompws.testing import Broker

from .support import RawWsPeer

_TEXT = websocket.ABNF.OPCODE_TEXT
_BINARY = websocket.ABNF.OPCODE_BINARY


@pytest.fixture
def ws_peers(broker: Broker) -> Iterator[Callable[..., RawWsPeer]]:
    peers: list[RawWsPeer] = []

    def open_peer(subprotocols: list[str] | None = None) -> RawWsPeer:
        peer = RawWsPeer(broker.ws_url, subprotocols=subprotocols)
        peers.append(peer)
        return peer

    yield open_peer
    for peer in peers:
        peer.close()


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        (["v10.stomp", "v11.stomp", "v12.stomp"], "v12.stomp"),
        (["v10.stomp", "v11.stomp"], "v11.stomp"),
        (["v10.stomp"], "v10.stomp"),
        (["mqtt", "v11.stomp"], "v11.stomp"),
        (None, None),  # no subprotocol offered at all: accepted without one
    ],
)
def test_the_highest_stomp_subprotocol_is_chosen(
    ws_peers: Callable[..., RawWsPeer], offered: list[str] | None, chosen: str | None
) -> None:
    peer = ws_peers(offered)
    assert peer.subprotocol == chosen
    assert peer.connect().command == "CONNECTED"


def test_only_other_subprotocols_are_refused(broker: Broker) -> None:
    with pytest.raises(websocket.WebSocketBadStatusException) as caught:
        RawWsPeer(broker.ws_url, subprotocols=["mqtt", "wamp"])
    assert caught.value.status_code == 400


def test_subprotocols_follow_the_brokers_versions(brokers: Callable[..., Broker]) -> None:
    broker = brokers(versions=("1.0", "1.1"), tcp=False)
    peer = RawWsPeer(broker.ws_url, subprotocols=["v12.stomp", "v11.stomp"])
    try:
        assert peer.subprotocol == "v11.stomp"
    finally:
        peer.close()


def test_each_frame_is_one_message_text_or_binary(ws_peers: Callable[..., RawWsPeer]) -> None:
    peer = ws_peers(["v12.stomp"])
    peer.connect()
    peer.send_frame("SUBSCRIBE", {"id": "s", "destination": "/queue/kinds"})
    peer.send_frame("SEND", {"destination": "/queue/kinds"}, "héllo".encode())
    peer.send_frame("SEND", {"destination": "/queue/kinds"}, b"\xff\xfe\x00")
    text, binary = peer.expect("MESSAGE"), peer.expect("MESSAGE")
    assert (text.text, binary.body) == ("héllo", b"\xff\xfe\x00")
    # CONNECTED, then one message per MESSAGE frame: UTF-8 as text, the rest as binary.
    assert peer.opcodes == [_TEXT, _TEXT, _BINARY]


def test_frames_split_across_and_packed_into_messages(ws_peers: Callable[..., RawWsPeer]) -> None:
    peer = ws_peers(["v12.stomp"])
    peer.connect()
    subscribe = b"SUBSCRIBE\nid:s\ndestination:/queue/split\n\n\x00"
    send = b"SEND\ndestination:/queue/split\nreceipt:r\n\npacked\x00"
    packed = subscribe + b"\n" + send
    for cut in (5, len(subscribe) + 3):
        peer.send(packed[:cut])
        peer.send(packed[cut:])
        assert peer.expect("MESSAGE").body == b"packed"
        assert peer.expect("RECEIPT").headers["receipt-id"] == "r"
        peer.send_frame("UNSUBSCRIBE", {"id": "s"})


def test_any_path_is_accepted(broker: Broker) -> None:
    other = broker.ws_url.replace("/ws", "/stomp")
    peer = RawWsPeer(other, subprotocols=["v12.stomp"])
    try:
        assert peer.connect().headers["version"] == "1.2"
    finally:
        peer.close()
