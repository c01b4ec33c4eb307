"""Hostile header names and values cannot add a header or a frame on the wire.

STOMP 1.0 and the CONNECT frame have no escapes, so a CR, LF or NUL is refused; 1.1 escapes
LF, colon and backslash and refuses CR (it has no escape for it); 1.2 escapes CR too. NUL is
refused in every version. Every check is made on the bytes a fake broker actually received,
parsed by a strict parser of the negotiated version: exactly the frames the test sent, each
with exactly the headers it asked for.
"""

from __future__ import annotations

import socket
import threading
from typing import Any

import pytest

import stompws
from stompws import Frame, FrameParser

from ..fakes import Peer, fake_broker

WAIT = 5.0

HOSTILE = [
    "plain",
    "a\nb",
    "a\r\nb",
    "a\rb",
    "a\x00b",
    "\n",
    "trailing\n",
    "x:y",
    ":",
    "\\",
    "\\n",
    "\\c",
    "\\r",
    "\\x",
    "content-length:0",
    "v\n\nbody",
    "v\ncontent-length:0\n\nBODY\x00SEND\ndestination:/queue/evil\n\nINJECTED\x00",
    "v\ndestination:/queue/evil",
    "é\u2028\u0085\x0b\x0c",  # Unicode line separators are plain characters in STOMP
]


def carried(text: str, version: str) -> bool:
    """Whether STOMP ``version`` can carry ``text`` in a (non-CONNECT) header."""
    if "\x00" in text:
        return False
    if version == "1.0":
        return "\n" not in text and "\r" not in text
    if version == "1.1":
        return "\r" not in text
    return True


def _session(
    version: str, actions: list[tuple[str, dict[str, str], str]]
) -> tuple[list[bool], list[Frame]]:
    """Connect at ``version``, try each SEND (destination, headers, body); return which the
    client accepted and every frame the broker received, parsed at ``version``."""
    raw = bytearray()

    def script(peer: Peer) -> None:
        peer.accept_connect(version=version)
        peer.parser.version = version
        peer.answer_receipts_until_disconnect()
        raw.extend(peer.raw)

    accepted: list[bool] = []
    with fake_broker(script) as broker:
        client = stompws.Client(broker.url, heartbeats=(0, 0), versions=(version,))
        client.connect(timeout=WAIT)
        for destination, headers, body in actions:
            try:
                client.send(destination, body, headers=headers)
            except stompws.UsageError:
                accepted.append(False)
            else:
                accepted.append(True)
            # Each frame is written whole or not at all, and the connection stays usable.
            assert client.is_connected
        client.disconnect(timeout=WAIT)
        broker.done.wait(WAIT)
    frames = [item for item in FrameParser(version).feed(bytes(raw)) if isinstance(item, Frame)]
    return accepted, frames


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_hostile_header_values_and_names(version: str) -> None:
    actions: list[tuple[str, dict[str, str], str]] = []
    expected: list[tuple[str, list[tuple[str, str]]]] = []
    for text in HOSTILE:
        for headers in ({"x-value": text}, {f"n{text}": "v"}):
            actions.append(("/queue/q", headers, "body"))
        actions.append((f"/queue/{text}", {}, "body"))  # the destination is a header too
    accepted, frames = _session(version, actions)

    for (destination, headers, _), ok in zip(actions, accepted, strict=True):
        texts = [destination, *headers, *headers.values()]
        name_has_colon = any(":" in name for name in headers)
        # 1.0 cannot carry a colon in a name (it would end the name); the others escape it.
        should = all(carried(text, version) for text in texts) and not (
            version == "1.0" and name_has_colon
        )
        assert ok == should, (version, destination, headers)
        if ok:
            expected.append((destination, list(headers.items())))

    assert [frame.command for frame in frames] == (
        ["CONNECT"] + ["SEND"] * len(expected) + ["DISCONNECT"]
    )
    for frame, (destination, pairs) in zip(frames[1:-1], expected, strict=True):
        assert frame.header_list == [
            ("destination", destination),
            *pairs,
            ("content-length", "4"),
        ]
        assert frame.body == b"body"


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
@pytest.mark.parametrize("field", ["login", "passcode", "host", "connect_headers"])
@pytest.mark.parametrize("text", ["a\nb", "a\rb", "a\r\nb", "a\x00b"])
def test_connect_headers_are_never_escaped_so_line_breaks_are_refused(
    version: str, field: str, text: str
) -> None:
    # CONNECT is never escaped in any version: a line break would end the header. The
    # client refuses before writing a byte, and leaves no socket or thread behind.
    received = bytearray()
    closed = threading.Event()

    def script(peer: Peer) -> None:
        if peer.connection.wait_closed(WAIT):
            closed.set()
        received.extend(peer.raw)

    options: dict[str, Any] = (
        {"connect_headers": {"x-extra": text}} if field == "connect_headers" else {field: text}
    )
    with fake_broker(script) as broker:
        client = stompws.Client(broker.url, heartbeats=(0, 0), versions=(version,), **options)
        with pytest.raises(stompws.UsageError, match=r"line break|NUL"):
            client.connect(timeout=WAIT)
        assert closed.wait(WAIT), "the client kept its socket open"
        client.disconnect()
    assert bytes(received) == b""


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_ack_echoes_hostile_ids_from_the_broker_escaped(version: str) -> None:
    # A broker's MESSAGE may carry (escaped) line breaks and colons in the ids the client
    # echoes in ACK and NACK: they must go back escaped, as one header each.
    hostile = "id\\nbad\\cx\\\\y"  # escaped on the wire: id<LF>bad:x\y
    decoded = "id\nbad:x\\y"
    acks: list[Frame] = []

    def script(peer: Peer) -> None:
        peer.accept_connect(version=version)
        subscribe = peer.frame()
        assert subscribe is not None and subscribe.command == "SUBSCRIBE"
        sub_id = subscribe.headers["id"]
        peer.parser.version = version
        peer.send(
            f"MESSAGE\nsubscription:{sub_id}\nmessage-id:{hostile}\nack:{hostile}\n"
            f"destination:/queue/q\ncontent-length:1\n\nx\x00".encode()
        )
        for frame in peer.answer_receipts_until_disconnect():
            if frame.command in ("ACK", "NACK"):
                acks.append(frame)

    with fake_broker(script) as broker:
        client = stompws.Client(broker.url, heartbeats=(0, 0), versions=(version,))
        client.connect(timeout=WAIT)
        inbox = client.subscribe("/queue/q", ack="client-individual")
        message = inbox.get(timeout=WAIT)
        assert message.headers["message-id"] == decoded
        client.ack(message)
        client.nack(message)
        client.disconnect(timeout=WAIT)
    assert [frame.command for frame in acks] == ["ACK", "NACK"]
    for frame in acks:
        if version == "1.2":
            assert frame.header_list == [("id", decoded)]
        else:
            assert frame.header_list == [("message-id", decoded), ("subscription", "sub-1")]


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Token": "a\r\nX-Injected: yes"},
        {"X-Token": "a\nX-Injected: yes"},
        {"X-Token": "a\x00"},
        {"X-Bad\r\nX-Injected": "secret-value"},
        {"X Bad": "secret-value"},
        {"X:Bad": "secret-value"},
        {"": "secret-value"},
    ],
)
def test_ws_headers_cannot_inject_into_the_handshake(headers: dict[str, str]) -> None:
    # websocket-client writes each extra header line as given: a CR or LF would add
    # headers of the caller's choosing to the HTTP request. Refused before any byte goes.
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    client = stompws.Client(f"ws://127.0.0.1:{port}/ws", ws_headers=headers, heartbeats=(0, 0))
    try:
        with pytest.raises(stompws.UsageError, match="ws_headers") as caught:
            client.connect(timeout=WAIT)
        for value in headers.values():
            assert value not in str(caught.value)  # values are often credentials
        with pytest.raises(TimeoutError):
            listener.accept()  # not even a TCP connection was made
    finally:
        client.disconnect()
        listener.close()


def test_ws_headers_that_are_fine_reach_the_server() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    request = bytearray()

    def serve() -> None:
        sock, _ = listener.accept()
        sock.settimeout(WAIT)
        with sock:
            while b"\r\n\r\n" not in request:
                data = sock.recv(4096)
                if not data:
                    break
                request.extend(data)

    thread = threading.Thread(target=serve)
    thread.start()
    client = stompws.Client(
        f"ws://127.0.0.1:{port}/ws",
        ws_headers={"Authorization": "Bearer a.b-c~d+e/f=", "X-Trace": '1; v="x:y"'},
        heartbeats=(0, 0),
    )
    with pytest.raises(stompws.ConnectError):
        client.connect(timeout=WAIT)
    client.disconnect()
    thread.join(WAIT)
    listener.close()
    lines = bytes(request).decode().split("\r\n")
    assert "Authorization: Bearer a.b-c~d+e/f=" in lines
    assert 'X-Trace: 1; v="x:y"' in lines
