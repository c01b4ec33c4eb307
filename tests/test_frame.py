"""Frame objects and the encoder: golden bytes for every command and version."""

from __future__ import annotations

import pytest

from stompws import Frame, FrameParser, Message, UsageError

VERSIONS = ["1.0", "1.1", "1.2"]

# (frame, version) -> exact bytes. Control frames without a body are encoded by the
# protocol layer without content-length; here every frame goes through Frame.encode.
GOLDEN = [
    (
        Frame("CONNECT", [("accept-version", "1.0,1.1,1.2"), ("heart-beat", "0,0")]),
        "1.2",
        False,
        b"CONNECT\naccept-version:1.0,1.1,1.2\nheart-beat:0,0\n\n\x00",
    ),
    (
        Frame("STOMP", [("accept-version", "1.2"), ("host", "vh")]),
        "1.2",
        False,
        b"STOMP\naccept-version:1.2\nhost:vh\n\n\x00",
    ),
    (
        Frame("SEND", [("destination", "/queue/a")], b"hello"),
        "1.2",
        True,
        b"SEND\ndestination:/queue/a\ncontent-length:5\n\nhello\x00",
    ),
    (
        Frame("SEND", [("destination", "/queue/a")], "h\u00e9"),
        "1.1",
        False,
        b"SEND\ndestination:/queue/a\n\nh\xc3\xa9\x00",
    ),
    (
        Frame("SUBSCRIBE", [("destination", "/topic/t"), ("id", "0"), ("ack", "client")]),
        "1.1",
        False,
        b"SUBSCRIBE\ndestination:/topic/t\nid:0\nack:client\n\n\x00",
    ),
    (Frame("UNSUBSCRIBE", [("id", "0")]), "1.0", False, b"UNSUBSCRIBE\nid:0\n\n\x00"),
    (Frame("ACK", [("id", "m-1")]), "1.2", False, b"ACK\nid:m-1\n\n\x00"),
    (
        Frame("NACK", [("message-id", "m-1"), ("subscription", "0")]),
        "1.1",
        False,
        b"NACK\nmessage-id:m-1\nsubscription:0\n\n\x00",
    ),
    (Frame("BEGIN", [("transaction", "tx1")]), "1.0", False, b"BEGIN\ntransaction:tx1\n\n\x00"),
    (Frame("COMMIT", [("transaction", "tx1")]), "1.1", False, b"COMMIT\ntransaction:tx1\n\n\x00"),
    (Frame("ABORT", [("transaction", "tx1")]), "1.2", False, b"ABORT\ntransaction:tx1\n\n\x00"),
    (Frame("DISCONNECT", [("receipt", "r-9")]), "1.2", False, b"DISCONNECT\nreceipt:r-9\n\n\x00"),
    (
        Frame("CONNECTED", [("version", "1.2"), ("server", "x:1")]),
        "1.2",
        False,
        b"CONNECTED\nversion:1.2\nserver:x:1\n\n\x00",
    ),
    (
        Frame("MESSAGE", [("subscription", "0"), ("message-id", "a:b"), ("ack", "1")], b"\x00x"),
        "1.2",
        True,
        b"MESSAGE\nsubscription:0\nmessage-id:a\\cb\nack:1\ncontent-length:2\n\n\x00x\x00",
    ),
    (
        Frame("MESSAGE", [("message-id", "a:b")], b"x"),
        "1.0",
        True,
        b"MESSAGE\nmessage-id:a:b\ncontent-length:1\n\nx\x00",
    ),
    (Frame("RECEIPT", [("receipt-id", "r-9")]), "1.0", False, b"RECEIPT\nreceipt-id:r-9\n\n\x00"),
    (
        Frame("ERROR", [("message", "bad\nthing")], b"details"),
        "1.2",
        True,
        b"ERROR\nmessage:bad\\nthing\ncontent-length:7\n\ndetails\x00",
    ),
]


@pytest.mark.parametrize(("frame", "version", "length", "wire"), GOLDEN)
def test_encode_golden(frame: Frame, version: str, length: bool, wire: bytes) -> None:
    assert frame.encode(version, content_length=length) == wire


@pytest.mark.parametrize(
    ("version", "value", "escaped"),
    [
        ("1.1", "a\\b", "a\\\\b"),
        ("1.1", "a\nb", "a\\nb"),
        ("1.1", "a:b", "a\\cb"),
        ("1.2", "a\rb", "a\\rb"),
        ("1.2", "\\n", "\\\\n"),
        ("1.0", "a\\b:c", "a\\b:c"),
    ],
)
def test_header_escaping_per_version(version: str, value: str, escaped: str) -> None:
    wire = Frame("SEND", {"k": value}).encode(version, content_length=False)
    assert wire == f"SEND\nk:{escaped}\n\n\x00".encode()


def test_header_names_are_escaped_too() -> None:
    wire = Frame("SEND", {"a:b": "v"}).encode("1.2", content_length=False)
    assert wire == b"SEND\na\\cb:v\n\n\x00"


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "x\r\ndestination:/evil"])
def test_stomp_10_refuses_line_breaks(value: str) -> None:
    with pytest.raises(UsageError, match="line break"):
        Frame("SEND", {"k": value}).encode("1.0")


def test_stomp_10_refuses_colon_in_name() -> None:
    with pytest.raises(UsageError, match="colon"):
        Frame("SEND", {"a:b": "v"}).encode("1.0")


def test_stomp_11_refuses_cr() -> None:
    with pytest.raises(UsageError, match=r"1\.1 has no escape for CR"):
        Frame("SEND", {"k": "a\rb"}).encode("1.1")


@pytest.mark.parametrize("version", VERSIONS)
def test_nul_in_header_refused_everywhere(version: str) -> None:
    with pytest.raises(UsageError, match="NUL"):
        Frame("SEND", {"k": "a\x00b"}).encode(version)


@pytest.mark.parametrize("command", ["CONNECT", "CONNECTED", "STOMP"])
def test_connect_frames_are_never_escaped(command: str) -> None:
    assert Frame(command, {"passcode": "a\\b:c"}).encode("1.2", content_length=False) == (
        f"{command}\npasscode:a\\b:c\n\n\x00".encode()
    )
    with pytest.raises(UsageError, match="line break"):
        Frame(command, {"login": "a\nb"}).encode("1.2")


def test_empty_header_name_refused() -> None:
    with pytest.raises(UsageError, match="empty header name"):
        Frame("SEND", {"": "v"}).encode("1.2")


@pytest.mark.parametrize("command", ["", "send", "SE ND", "SEND\n"])
def test_bad_command_refused(command: str) -> None:
    with pytest.raises(UsageError, match="command"):
        Frame(command).encode()


def test_unknown_version_refused() -> None:
    with pytest.raises(UsageError, match="version"):
        Frame("SEND").encode("2.0")


def test_content_length_counts_encoded_bytes_and_replaces_a_wrong_one() -> None:
    frame = Frame("SEND", [("content-length", "999"), ("destination", "/q")], "\u20ac")
    assert frame.encode("1.2") == b"SEND\ndestination:/q\ncontent-length:3\n\n\xe2\x82\xac\x00"


def test_omitting_content_length_keeps_none() -> None:
    frame = Frame("SEND", [("content-length", "3"), ("destination", "/q")], "abc")
    assert frame.encode("1.2", content_length=False) == b"SEND\ndestination:/q\n\nabc\x00"


def test_omitting_content_length_with_nul_in_body_is_refused() -> None:
    with pytest.raises(UsageError, match="NUL"):
        Frame("SEND", {"destination": "/q"}, b"a\x00b").encode(content_length=False)


def test_repeated_headers_first_wins_and_all_kept() -> None:
    frame = Frame("MESSAGE", [("k", "1"), ("x", "y"), ("k", "2")])
    assert frame.headers == {"k": "1", "x": "y"}
    assert frame.header_list == [("k", "1"), ("x", "y"), ("k", "2")]
    assert frame.encode("1.2", content_length=False) == b"MESSAGE\nk:1\nx:y\nk:2\n\n\x00"


@pytest.mark.parametrize("label", ["bogus-charset", "base64", "x" * 300])
def test_an_unknown_charset_reads_as_utf8_with_replacement(label: str) -> None:
    frame = Frame("MESSAGE", {"content-type": f"text/plain;charset={label}"}, b"caf\xc3\xa9 \xff")
    assert frame.charset == "utf-8"
    assert frame.text == "caf\u00e9 \ufffd"


def test_a_known_charset_stays_strict() -> None:
    frame = Frame("MESSAGE", {"content-type": "text/plain;charset=utf-8"}, b"\xff")
    with pytest.raises(UnicodeDecodeError):
        _ = frame.text


def test_frame_text_uses_charset() -> None:
    frame = Frame("MESSAGE", {"content-type": "text/plain; charset=latin-1"}, b"\xe9")
    assert frame.charset == "latin-1"
    assert frame.text == "\u00e9"
    assert Frame("MESSAGE", {}, "\u00e9").text == "\u00e9"


def test_frame_json() -> None:
    assert Frame("MESSAGE", {}, b'{"a": [1, 2]}').json() == {"a": [1, 2]}


def test_non_string_header_values_become_strings() -> None:
    frame = Frame("SEND", {"priority": 5})  # type: ignore[dict-item]
    assert frame.headers == {"priority": "5"}


def test_repr_hides_passcode() -> None:
    text = repr(Frame("CONNECT", {"login": "u", "passcode": "s3cret-value"}))
    assert "s3cret-value" not in text
    assert "CONNECT" in text


def test_frame_equality() -> None:
    assert Frame("SEND", {"a": "1"}, b"x") == Frame("SEND", [("a", "1")], "x")
    assert Frame("SEND", {"a": "1"}, b"x") != Frame("SEND", {"a": "2"}, b"x")
    assert Frame("SEND") != "SEND"


def test_a_frame_is_pure_data() -> None:
    frame = Frame("MESSAGE", {"ack": "1"})
    assert not hasattr(frame, "ack") and not hasattr(frame, "nack")


def test_a_delivered_message_acknowledges_through_its_client() -> None:
    calls: list[tuple[Frame, bool, dict[str, object]]] = []

    class Recording:
        def acknowledge(self, frame: Frame, positive: bool, **options: object) -> None:
            calls.append((frame, positive, options))

    frame = Frame("MESSAGE", [("ack", "1"), ("k", "a"), ("k", "b")], b"body")
    message = Message.received(frame, Recording(), origin="connection-1")  # type: ignore[arg-type]
    assert (message.command, message.headers, message.body) == ("MESSAGE", frame.headers, b"body")
    assert message.header_list == frame.header_list  # repeated headers survive
    assert message.origin == "connection-1"
    message.ack()
    message.nack(transaction="t")
    assert [(f, positive, options["transaction"]) for f, positive, options in calls] == [
        (message, True, None),
        (message, False, "t"),
    ]


@pytest.mark.parametrize(
    "wire",
    [
        b"MESSAGE\nsubscription:0\nmessage-id:a\\cb\ncontent-length:2\n\nhi\x00",
        b"MESSAGE\nk:1\nx:y\nk:2\ncontent-length:0\n\n\x00",
    ],
)
def test_a_parsed_frame_encodes_back_to_its_bytes(wire: bytes) -> None:
    [frame] = FrameParser("1.2").feed(wire)
    assert isinstance(frame, Frame)
    assert frame.encode("1.2") == wire
