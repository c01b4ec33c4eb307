"""Small hostile inputs: WebSocket framing a broker gets wrong (a continuation with no
message before it, a close frame with a 1-byte payload), secrets in a URL's query, and the
CLI's passcode."""

from __future__ import annotations

import threading

import pytest

import stompws
from stompws.__main__ import main
from stompws.endpoint import parse_url
from stompws.ws_framing import FrameReader, FramingError

from .hostile import HostileBroker, HostilePeer

WAIT = 10.0
SECRET = "k-3f9a0c1d77"


def _client_frame(peer: HostilePeer) -> tuple[int, bytes]:
    """The opcode and unmasked payload of the client's next WebSocket frame."""
    first, second = peer._read_exactly(2)
    length = second & 0x7F
    if length == 126:
        length = int.from_bytes(peer._read_exactly(2), "big")
    elif length == 127:
        length = int.from_bytes(peer._read_exactly(8), "big")
    mask = peer._read_exactly(4)
    payload = peer._read_exactly(length)
    return first & 0x0F, bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))


def _hostile_ws(wire: bytes) -> tuple[BaseException | None, list[tuple[int, bytes]]]:
    """Connect, let the broker send ``wire``; the client's reason and its frames after."""
    answers: list[tuple[int, bytes]] = []
    got_close = threading.Event()

    def script(peer: HostilePeer) -> None:
        peer.sock.sendall(wire)
        while True:  # the client's frames up to its close (or the end of the connection)
            frame = _client_frame(peer)
            answers.append(frame)
            if frame[0] == 0x8:
                got_close.set()
                return

    waiter = stompws.WaitingListener()
    with HostileBroker(True, script) as broker:
        client = stompws.Client(broker.url, heartbeats=(0, 0))
        client.add_listener(waiter)
        reason: BaseException | None
        try:
            client.connect(timeout=WAIT)
        except stompws.ConnectError as error:  # the bytes may come with CONNECTED
            reason = error.__cause__ if error.__cause__ is not None else error
        else:
            reason = waiter.wait_for_disconnect(WAIT)
        client.disconnect(timeout=1.0)
        assert got_close.wait(WAIT) or broker.closed_by_client.wait(WAIT)
    return reason, answers


def test_a_continuation_frame_with_nothing_before_it_fails_the_connection() -> None:
    orphan = b"MESSAGE\nsubscription:s\nmessage-id:1\ndestination:/q\n\nx\x00"
    reason, answers = _hostile_ws(bytes((0x80, len(orphan))) + orphan)
    assert isinstance(reason, stompws.ProtocolError), repr(reason)
    assert "continuation" in str(reason)
    assert (0x8, (1002).to_bytes(2, "big")) in answers, answers


def test_a_close_frame_with_a_one_byte_payload_fails_the_connection() -> None:
    reason, answers = _hostile_ws(bytes((0x88, 1, 0x03)))
    assert isinstance(reason, stompws.ProtocolError), repr(reason)
    assert [frame for frame in answers if frame[0] == 0x8] == [(0x8, (1002).to_bytes(2, "big"))]


@pytest.mark.parametrize(
    "url",
    [
        f"wss://broker.example/ws?apikey={SECRET}&version=9.9",
        f"wss://broker.example/ws?apikey={SECRET}&heartbeat=x",
        f"wss://broker.example/ws?apikey={SECRET}&vhost=",
        f"stomp://broker.example?apikey={SECRET}",
        f"ftp://broker.example/ws?apikey={SECRET}",
        f"wss://broker.example:99999/ws?apikey={SECRET}",
    ],
)
def test_a_query_secret_is_not_in_usage_errors(url: str) -> None:
    with pytest.raises(stompws.UsageError) as caught:
        parse_url(url)
    assert SECRET not in str(caught.value)
    assert "broker.example" in str(caught.value)  # still says which URL


def test_a_query_secret_is_not_in_the_endpoint_repr() -> None:
    endpoint = parse_url(f"wss://u:pw@broker.example/ws?apikey={SECRET}&version=1.2")
    shown = repr(endpoint)
    assert SECRET not in shown and "pw" not in shown
    assert "broker.example" in shown and "/ws?..." in shown
    assert SECRET in endpoint.path  # the server still gets it


def test_cli_help_points_away_from_passcode_on_the_command_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["subscribe", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "STOMPWS_PASSCODE" in text
    assert "visible to other users" in text


def test_fragment_sequence_is_checked_sans_io() -> None:
    def frame(first: int, payload: bytes) -> bytes:
        return bytes((first, len(payload))) + payload

    reader = FrameReader()
    # A fragmented message with a ping inside it is fine (RFC 6455 5.4).
    received = reader.receive_data(
        frame(0x01, b"ab") + frame(0x89, b"p") + frame(0x00, b"cd") + frame(0x80, b"ef")
    )
    assert received.data == b"abcdef" and received.pings == (b"p",)
    with pytest.raises(FramingError, match="before its fragmented one ended"):
        FrameReader().receive_data(frame(0x01, b"ab") + frame(0x81, b"cd"))
    with pytest.raises(FramingError, match="no message to continue"):
        FrameReader().receive_data(frame(0x81, b"ab") + frame(0x80, b"cd"))
