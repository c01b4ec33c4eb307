"""The streaming parser: golden frames, every split point, heart-beats, strictness, limits."""

from __future__ import annotations

import pytest

from stompws import HEARTBEAT, Frame, FrameParser, Heartbeat, ProtocolError

VERSIONS = ["1.0", "1.1", "1.2"]

# (version, wire bytes) -> (command, header list, body)
GOLDEN = [
    (
        "1.2",
        b"CONNECTED\nversion:1.2\nheart-beat:0,0\n\n\x00",
        "CONNECTED",
        [("version", "1.2"), ("heart-beat", "0,0")],
        b"",
    ),
    ("1.2", b"CONNECTED\nserver:a\\cb\n\n\x00", "CONNECTED", [("server", "a\\cb")], b""),
    (
        "1.2",
        b"MESSAGE\nsubscription:0\nmessage-id:a\\cb\\\\c\nack:x\\ny\n\nhi\x00",
        "MESSAGE",
        [("subscription", "0"), ("message-id", "a:b\\c"), ("ack", "x\ny")],
        b"hi",
    ),
    ("1.1", b"MESSAGE\nk:a\\nb\\cc\\\\d\n\n\x00", "MESSAGE", [("k", "a\nb:c\\d")], b""),
    ("1.0", b"MESSAGE\nk:a\\nb:c\n\n\x00", "MESSAGE", [("k", "a\\nb:c")], b""),
    ("1.2", b"MESSAGE\nk:a\\rb\n\n\x00", "MESSAGE", [("k", "a\rb")], b""),
    ("1.2", b"RECEIPT\nreceipt-id:77\n\n\x00", "RECEIPT", [("receipt-id", "77")], b""),
    (
        "1.2",
        b"ERROR\nmessage:bad\ncontent-length:4\n\nwhy!\x00",
        "ERROR",
        [("message", "bad"), ("content-length", "4")],
        b"why!",
    ),
    (
        "1.2",
        b"MESSAGE\ncontent-length:3\n\na\x00b\x00",
        "MESSAGE",
        [("content-length", "3")],
        b"a\x00b",
    ),
    ("1.2", b"MESSAGE\n\nno headers\x00", "MESSAGE", [], b"no headers"),
    (
        "1.2",
        b"MESSAGE\r\nk:v\r\nj: w \r\n\r\nbody\r\n\x00",
        "MESSAGE",
        [("k", "v"), ("j", " w ")],
        b"body\r\n",
    ),
    (
        "1.2",
        b"MESSAGE\nk:1\nk:2\nj:3\n\n\x00",
        "MESSAGE",
        [("k", "1"), ("k", "2"), ("j", "3")],
        b"",
    ),
    ("1.2", b"MESSAGE\nk: spaced :\n\n\x00", "MESSAGE", [("k", " spaced :")], b""),
    ("1.2", b"SEND\ndestination:/q\n\n\xff\xfe\x00", "SEND", [("destination", "/q")], b"\xff\xfe"),
    ("1.2", "MESSAGE\nk\u00e9:\u20ac\n\n\x00".encode(), "MESSAGE", [("k\u00e9", "\u20ac")], b""),
    ("1.1", b"FOO\n\n\x00", "FOO", [], b""),
]


def parse_all(data: bytes, version: str = "1.2") -> list[Frame | Heartbeat]:
    return FrameParser(version).feed(data)


@pytest.mark.parametrize(("version", "wire", "command", "headers", "body"), GOLDEN)
def test_decode_golden(
    version: str, wire: bytes, command: str, headers: list[tuple[str, str]], body: bytes
) -> None:
    [frame] = parse_all(wire, version)
    assert isinstance(frame, Frame)
    assert frame.command == command
    assert frame.header_list == headers
    assert frame.body == body
    first: dict[str, str] = {}
    for name, value in headers:
        first.setdefault(name, value)
    assert frame.headers == first


@pytest.mark.parametrize(("version", "wire", "command", "headers", "body"), GOLDEN)
def test_every_split_point(
    version: str, wire: bytes, command: str, headers: list[tuple[str, str]], body: bytes
) -> None:
    stream = b"\n" + wire + b"\r\n" + wire
    expected = parse_all(stream, version)
    for cut in range(len(stream) + 1):
        parser = FrameParser(version)
        got = parser.feed(stream[:cut]) + parser.feed(stream[cut:])
        assert got == expected, cut
        assert parser.buffered == 0


@pytest.mark.parametrize(("version", "wire", "command", "headers", "body"), GOLDEN)
def test_byte_at_a_time(
    version: str, wire: bytes, command: str, headers: list[tuple[str, str]], body: bytes
) -> None:
    parser = FrameParser(version)
    got: list[Frame | Heartbeat] = []
    for index in range(len(wire)):
        got += parser.feed(wire[index : index + 1])
    assert got == parse_all(wire, version)


def test_many_frames_and_heartbeats_in_one_chunk() -> None:
    one = b"MESSAGE\nk:v\n\nx\x00"
    items = parse_all(b"\n\r\n" + one + b"\n" + one + one + b"\r\n\n")
    assert items[:2] == [HEARTBEAT, HEARTBEAT]
    assert [type(i).__name__ for i in items] == [
        "Heartbeat",
        "Heartbeat",
        "Frame",
        "Heartbeat",
        "Frame",
        "Frame",
        "Heartbeat",
        "Heartbeat",
    ]


def test_heartbeat_is_a_singleton_with_a_clear_repr() -> None:
    assert Heartbeat() is HEARTBEAT
    assert repr(HEARTBEAT) == "HEARTBEAT"


def test_a_lone_cr_waits_for_its_lf() -> None:
    parser = FrameParser()
    assert parser.feed(b"\r") == []
    assert parser.feed(b"\n") == [HEARTBEAT]


def test_cr_without_lf_between_frames_is_an_error() -> None:
    with pytest.raises(ProtocolError, match="CR not followed by LF"):
        parse_all(b"\rX")


def test_body_without_content_length_ends_at_first_nul() -> None:
    first, second = parse_all(b"SEND\n\nab\x00SEND\n\ncd\x00")
    assert isinstance(first, Frame) and first.body == b"ab"
    assert isinstance(second, Frame) and second.body == b"cd"


def test_garbage_after_a_frame_is_an_error_but_the_frame_is_kept() -> None:
    parser = FrameParser()
    with pytest.raises(ProtocolError, match="invalid command") as caught:
        parser.feed(b"SEND\n\nab\x00lower\n\n\x00")
    kept = caught.value.frames
    assert len(kept) == 1 and kept[0].body == b"ab"
    with pytest.raises(ProtocolError, match="invalid command"):
        parser.feed(b"SEND\n\n\x00")  # stays broken


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (b"MESSAGE\nk:a\\tb\n\n\x00", "undefined escape"),
        (b"MESSAGE\nk:a\\\n\n\x00", "undefined escape"),
        (b"MESSAGE\nk:a\\\\\\x\n\n\x00", "undefined escape"),
        (b"MESSAGE\nnocolon\n\n\x00", "without a colon"),
        (b"MESSAGE\n:v\n\n\x00", "empty name"),
        (b"MESSAGE\nk:v\n:w\n\n\x00", "empty name"),
        (b"MESSAGE\nk:\xff\n\n\x00", "not valid UTF-8"),
        (b"MESSAGE\ncontent-length:x\n\n\x00", "content-length is not a number"),
        (b"MESSAGE\ncontent-length:-1\n\n\x00", "content-length is not a number"),
        (b"MESSAGE\ncontent-length:" + b"9" * 5000 + b"\n\nx\x00", "of 5000 digits"),
        (b"MESSAGE\ncontent-length:" + b"0" * 19 + b"1\n\nx\x00", "of 20 digits"),
        (b"MESSAGE\ncontent-length:1\n\nab\x00", "not followed by NUL"),
        (b"MESSAGE\nk:a\x00b\nc:d\n\n\x00", "NUL character"),
        (b"message\n\n\x00", "invalid command"),
        (b"MES SAGE\n\n\x00", "invalid command"),
        (b"MESSAGE\na:b:c\nd\n\n\x00", "without a colon"),
    ],
)
def test_malformed_frames(wire: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        parse_all(wire, "1.2")


def test_cr_escape_is_read_in_11_too() -> None:
    """A leniency: 1.1 defines no ``\\r``, but RabbitMQ sends it on 1.1 for a CR."""
    for wire in (b"MESSAGE\nk:a\\rb\n\n\x00", b"MESSAGE\nk\\r:a\\rb\\c\\\\r\n\n\x00"):
        [frame] = parse_all(wire, "1.1")
        assert isinstance(frame, Frame)
        assert frame.headers == parse_all(wire, "1.2")[0].headers  # type: ignore[union-attr]
    [frame] = parse_all(b"MESSAGE\nk\\r:a\\rb\\c\\\\r\n\n\x00", "1.1")
    assert isinstance(frame, Frame) and frame.headers == {"k\r": "a\rb:\\r"}


@pytest.mark.parametrize("version", ["1.1", "1.2"])
@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (
            b"MESSAGE\nk:v\nbad:a\\tb\n\n\x00",
            "undefined escape '\\\\t' in the value of header 'bad'",
        ),
        (
            b"MESSAGE\nk:v\nb\\ad:ab\n\n\x00",
            "undefined escape '\\\\a' in the name of header 'b\\\\ad'",
        ),
        (b"MESSAGE\nk:v\nend:ab\\\n\n\x00", "undefined escape '\\\\' in the value of header 'end'"),
        # Over 64 headers: the block is read line by line, not in one piece.
        (
            b"MESSAGE\n" + b"".join(b"h%d:v\n" % i for i in range(70)) + b"bad:\\x\n\n\x00",
            "undefined escape '\\\\x' in the value of header 'bad'",
        ),
    ],
)
def test_undefined_escape_names_the_header(wire: bytes, message: str, version: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_all(wire, version)
    assert str(caught.value).startswith(f"{message} (STOMP {version})"), str(caught.value)
    assert "\\n" not in str(caught.value) and "\x00" not in str(caught.value)


def test_no_unescaping_in_10() -> None:
    [frame] = parse_all(b"MESSAGE\nk:a\\tb\n\n\x00", "1.0")
    assert isinstance(frame, Frame) and frame.headers["k"] == "a\\tb"


def test_protocol_error_says_where() -> None:
    parser = FrameParser()
    parser.feed(b"SEND\n\n\x00")
    with pytest.raises(ProtocolError, match="at byte 7 of the stream") as caught:
        parser.feed(b"bad\n\n\x00")
    assert caught.value.offset == 7


def test_version_can_change_after_connected() -> None:
    parser = FrameParser("1.2")
    parser.version = "1.0"
    [frame] = parser.feed(b"MESSAGE\nk:a\\cb\n\n\x00")
    assert isinstance(frame, Frame) and frame.headers["k"] == "a\\cb"
    with pytest.raises(ValueError, match="unknown STOMP version"):
        parser.version = "3.0"


def test_bytearray_and_memoryview_input() -> None:
    wire = b"SEND\ncontent-length:1\n\nx\x00"
    [a] = FrameParser().feed(bytearray(wire))
    [b] = FrameParser().feed(memoryview(wire))  # type: ignore[arg-type]
    assert isinstance(a, Frame) and isinstance(a.body, bytes) and a == b


def test_empty_feed() -> None:
    assert FrameParser().feed(b"") == []


def test_bodies_from_the_buffer_are_bytes() -> None:
    parser = FrameParser()
    parser.feed(b"SEND\n\nab")
    [frame] = parser.feed(b"c\x00")
    assert isinstance(frame, Frame) and type(frame.body) is bytes and frame.body == b"abc"


# -- limits ------------------------------------------------------------------------------


def test_content_length_over_the_limit_fails_before_the_body_arrives() -> None:
    parser = FrameParser(max_frame_size=1000)
    with pytest.raises(ProtocolError, match="max_frame_size=1000"):
        parser.feed(b"MESSAGE\ncontent-length:5000\n\n")
    assert parser.buffered == 0


def test_body_without_length_over_the_limit_fails_as_soon_as_crossed() -> None:
    parser = FrameParser(max_frame_size=1000)
    parser.feed(b"MESSAGE\n\n")
    for _ in range(9):
        assert parser.feed(b"x" * 100) == []
    with pytest.raises(ProtocolError, match="max_frame_size=1000"):
        parser.feed(b"x" * 100)
    assert parser.buffered == 0


def test_body_without_length_over_the_limit_in_one_chunk() -> None:
    with pytest.raises(ProtocolError, match="max_frame_size=100"):
        FrameParser(max_frame_size=100).feed(b"MESSAGE\n\n" + b"x" * 200)
    with pytest.raises(ProtocolError, match="max_frame_size=100"):
        FrameParser(max_frame_size=100).feed(b"MESSAGE\n\n" + b"x" * 200 + b"\x00")


def test_frame_at_the_limit_passes() -> None:
    wire = b"MESSAGE\ncontent-length:10\n\n" + b"x" * 10 + b"\x00"
    [frame] = FrameParser(max_frame_size=len(wire) - 1).feed(wire)
    assert isinstance(frame, Frame) and frame.body == b"x" * 10


def test_too_many_headers() -> None:
    wire = b"MESSAGE\n" + b"".join(b"h%d:v\n" % i for i in range(11)) + b"\n\x00"
    with pytest.raises(ProtocolError, match="max_header_count=10"):
        FrameParser(max_header_count=10).feed(wire)
    [frame] = FrameParser(max_header_count=11).feed(wire)
    assert isinstance(frame, Frame) and len(frame.headers) == 11


def test_too_many_headers_arriving_line_by_line() -> None:
    parser = FrameParser(max_header_count=10)
    parser.feed(b"MESSAGE\r\n")
    for i in range(10):
        assert parser.feed(b"h%d:v\r\n" % i) == []
    with pytest.raises(ProtocolError, match="max_header_count=10"):
        parser.feed(b"h10:v\r\n")


def test_header_line_too_long_in_one_chunk() -> None:
    wire = b"MESSAGE\nk:" + b"v" * 200 + b"\n\n\x00"
    with pytest.raises(ProtocolError, match="max_header_line=100"):
        FrameParser(max_header_line=100).feed(wire)


def test_endless_header_line_fails_as_soon_as_crossed() -> None:
    parser = FrameParser(max_header_line=1000)
    parser.feed(b"MESSAGE\nk:")
    for _ in range(9):
        assert parser.feed(b"v" * 100) == []
    with pytest.raises(ProtocolError, match="max_header_line=1000"):
        parser.feed(b"v" * 100)  # the line is now 1002 bytes
    assert parser.buffered == 0


def test_endless_command_line_fails() -> None:
    with pytest.raises(ProtocolError, match="max_header_line=50"):
        FrameParser(max_header_line=50).feed(b"M" * 100)


def test_header_block_over_frame_size() -> None:
    parser = FrameParser(max_frame_size=100, max_header_line=1000)
    with pytest.raises(ProtocolError, match="max_frame_size=100"):
        parser.feed(b"MESSAGE\r\n" + b"k:vvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv\r\n" * 5)


@pytest.mark.parametrize("name", ["max_frame_size", "max_header_count", "max_header_line"])
def test_limits_must_be_positive(name: str) -> None:
    with pytest.raises(ValueError, match=name):
        FrameParser(**{name: 0})  # type: ignore[arg-type]


def test_large_body_in_small_chunks_is_buffered_once() -> None:
    body = bytes(range(256)) * 4096  # 1 MiB with NULs, so content-length is needed
    wire = Frame("MESSAGE", {"destination": "/q"}, body).encode()
    parser = FrameParser()
    frames: list[Frame | Heartbeat] = []
    for start in range(0, len(wire), 4096):
        frames += parser.feed(wire[start : start + 4096])
        assert parser.buffered < len(wire) + 4096
    assert len(frames) == 1 and isinstance(frames[0], Frame) and frames[0].body == body


def test_large_body_without_length_in_small_chunks() -> None:
    body = b"y" * (1 << 20)
    wire = b"MESSAGE\n\n" + body + b"\x00\n"
    parser = FrameParser()
    frames: list[Frame | Heartbeat] = []
    for start in range(0, len(wire), 4096):
        frames += parser.feed(wire[start : start + 4096])
    assert frames[1:] == [HEARTBEAT]
    assert isinstance(frames[0], Frame) and frames[0].body == body


# -- bodies arriving in pieces, CRLF runs, long blocks -------------------------------------


def feed_in_pieces(parser: FrameParser, wire: bytes, size: int) -> list[Frame | Heartbeat]:
    got: list[Frame | Heartbeat] = []
    for start in range(0, len(wire), size):
        got += parser.feed(wire[start : start + size])
    return got


def test_body_pieces_are_copied_from_a_reused_bytearray() -> None:
    parser = FrameParser()
    piece = bytearray(b"MESSAGE\ncontent-length:6\n\nab")
    assert parser.feed(piece) == []
    piece[:] = b"cd"
    assert parser.feed(piece) == [] and parser.buffered == 30
    piece[:] = b"ef\x00"
    [frame] = parser.feed(piece)
    assert isinstance(frame, Frame) and frame.body == b"abcdef" and parser.buffered == 0


def test_frames_after_a_body_in_the_same_chunk_and_an_error_after_them() -> None:
    parser = FrameParser()
    parser.feed(b"MESSAGE\ncontent-length:3\n\na")
    parser.feed(b"b")
    with pytest.raises(ProtocolError, match="invalid command") as caught:
        parser.feed(b"c\x00\nSEND\n\nx\x00bad\n\n\x00")
    kept = caught.value.frames  # type: ignore[attr-defined]
    assert [type(item).__name__ for item in kept] == ["Frame", "Heartbeat", "Frame"]
    assert kept[0].body == b"abc" and kept[2].body == b"x"
    assert caught.value.offset == 39


def test_missing_nul_after_a_body_in_pieces() -> None:
    parser = FrameParser()
    parser.feed(b"SEND\n\n")  # a frame first: the offset counts from the stream start
    parser.feed(b"\x00MESSAGE\ncontent-length:2\n\na")
    with pytest.raises(ProtocolError, match="not followed by NUL") as caught:
        parser.feed(b"bc\x00")
    assert caught.value.offset == 7 + 28 and caught.value.frames == []  # type: ignore[attr-defined]
    assert parser.buffered == 0
    with pytest.raises(ProtocolError, match="not followed by NUL"):
        parser.feed(b"\x00")


def test_body_without_length_in_pieces_over_the_limit_when_its_nul_comes() -> None:
    parser = FrameParser(max_frame_size=30)
    parser.feed(b"MESSAGE\n\n" + b"x" * 10)
    with pytest.raises(ProtocolError, match="MESSAGE frame of 31 bytes is over"):
        parser.feed(b"y" * 12 + b"\x00")


def test_version_set_while_a_body_arrives_applies_to_its_headers() -> None:
    parser = FrameParser("1.2")
    parser.feed(b"MESSAGE\nk:a\\cb\ncontent-length:2\n\nx")
    parser.version = "1.0"
    [frame] = parser.feed(b"y\x00")
    assert isinstance(frame, Frame) and frame.headers["k"] == "a\\cb" and frame.body == b"xy"


def test_many_crlf_frames_then_lf_frames_in_one_chunk() -> None:
    crlf = b"MESSAGE\r\nk:v\r\nid:%d\r\n\r\nbody\x00\r\n"
    lf = b"MESSAGE\nk:v\nid:%d\n\nbody\n\nmore\x00\n"
    wire = b"".join(crlf % i for i in range(50)) + b"".join(lf % i for i in range(50))
    whole = FrameParser().feed(wire)
    assert whole == feed_in_pieces(FrameParser(), wire, 7)
    frames = [item for item in whole if isinstance(item, Frame)]
    assert [f.headers["id"] for f in frames] == [str(i % 50) for i in range(100)]
    assert frames[0].body == b"body" and frames[99].body == b"body\n\nmore"


def test_a_common_block_with_more_than_64_headers() -> None:
    names = [f"h{i}" for i in range(100)]
    wire = b"MESSAGE\n" + b"".join(b"%s:a\\cb\n" % n.encode() for n in names) + b"h0:x\n\n\x00"
    [frame] = FrameParser(max_header_count=101).feed(wire)
    assert isinstance(frame, Frame) and list(frame.headers) == names
    assert frame.headers["h0"] == "a:b" and frame.header_list[-1] == ("h0", "x")
    with pytest.raises(ProtocolError, match="max_header_count=100"):
        FrameParser(max_header_count=100).feed(wire)
