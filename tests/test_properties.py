"""Property tests: encode-then-parse gives the frame back; garbage raises only ProtocolError."""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stompws import Frame, FrameParser, ProtocolError

from .support.volume import scaled

COMMANDS = st.sampled_from(["SEND", "MESSAGE", "ERROR", "RECEIPT", "ACK", "SUBSCRIBE", "BEGIN"])
# What each version can carry in a header (anything else is refused by the encoder).
TEXT_10 = st.text(st.characters(blacklist_characters="\r\n\x00", blacklist_categories=["Cs"]))
TEXT_11 = st.text(st.characters(blacklist_characters="\r\x00", blacklist_categories=["Cs"]))
TEXT_12 = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"]))
NAME_10 = st.text(
    st.characters(blacklist_characters="\r\n\x00:", blacklist_categories=["Cs"]), min_size=1
)


def header_lists(
    names: st.SearchStrategy[str], values: st.SearchStrategy[str]
) -> st.SearchStrategy[list[tuple[str, str]]]:
    pairs = st.tuples(names.filter(lambda n: n != "content-length"), values)
    return st.lists(pairs, max_size=8)


def roundtrip(frame: Frame, version: str, chunk: int) -> Frame:
    wire = frame.encode(version)
    parser = FrameParser(version)
    items = []
    for start in range(0, len(wire), chunk):
        items += parser.feed(wire[start : start + chunk])
    assert parser.buffered == 0
    [parsed] = items
    assert isinstance(parsed, Frame)
    return parsed


def check(frame: Frame, parsed: Frame) -> None:
    assert parsed.command == frame.command
    assert parsed.body == frame.body
    assert parsed.header_list == [*frame.header_list, ("content-length", str(len(frame.body)))]


@settings(max_examples=scaled(300), suppress_health_check=[HealthCheck.too_slow])
@given(COMMANDS, header_lists(NAME_10, TEXT_10), st.binary(max_size=300), st.integers(1, 64))
def test_roundtrip_10(
    command: str, headers: list[tuple[str, str]], body: bytes, chunk: int
) -> None:
    frame = Frame(command, headers, body)
    check(frame, roundtrip(frame, "1.0", chunk))


@settings(max_examples=scaled(300), suppress_health_check=[HealthCheck.too_slow])
@given(
    COMMANDS,
    header_lists(TEXT_11.filter(bool), TEXT_11),
    st.binary(max_size=300),
    st.integers(1, 64),
)
def test_roundtrip_11(
    command: str, headers: list[tuple[str, str]], body: bytes, chunk: int
) -> None:
    frame = Frame(command, headers, body)
    check(frame, roundtrip(frame, "1.1", chunk))


@settings(max_examples=scaled(300), suppress_health_check=[HealthCheck.too_slow])
@given(
    COMMANDS,
    header_lists(TEXT_12.filter(bool), TEXT_12),
    st.binary(max_size=300),
    st.integers(1, 64),
)
def test_roundtrip_12(
    command: str, headers: list[tuple[str, str]], body: bytes, chunk: int
) -> None:
    frame = Frame(command, headers, body)
    check(frame, roundtrip(frame, "1.2", chunk))


@settings(max_examples=scaled(200))
@given(st.lists(st.binary(max_size=40).filter(lambda b: b"\x00" not in b), max_size=5))
def test_frames_without_content_length_roundtrip(bodies: list[bytes]) -> None:
    frames = [Frame("MESSAGE", {"n": str(i)}, body) for i, body in enumerate(bodies)]
    wire = b"\n".join(f.encode("1.2", content_length=False) for f in frames)
    parsed = [item for item in FrameParser().feed(wire) if isinstance(item, Frame)]
    assert [p.body for p in parsed] == bodies


VALID = [
    b"MESSAGE\nsubscription:0\nmessage-id:a\\cb\ncontent-length:3\n\nx\x00y\x00\n",
    b"CONNECTED\nversion:1.2\nheart-beat:0,0\n\n\x00",
    b"MESSAGE\r\nk:v\r\n\r\nbody\x00\r\n",
]


@settings(max_examples=scaled(1000))
@given(st.binary(max_size=200), st.sampled_from(["1.0", "1.1", "1.2"]), st.integers(1, 50))
def test_garbage_raises_only_protocol_error(data: bytes, version: str, chunk: int) -> None:
    parser = FrameParser(version, max_frame_size=150, max_header_count=5, max_header_line=60)
    with contextlib.suppress(ProtocolError):
        for start in range(0, len(data), chunk):
            parser.feed(data[start : start + chunk])


@settings(max_examples=scaled(1000))
@given(st.sampled_from(VALID), st.data())
def test_mutated_frames_raise_only_protocol_error(wire: bytes, data: st.DataObject) -> None:
    mutated = bytearray(wire)
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(mutated) - 1))
        action = data.draw(st.integers(0, 2))
        if action == 0:
            mutated[index] = data.draw(st.integers(0, 255))
        elif action == 1:
            del mutated[index]
        else:
            mutated.insert(index, data.draw(st.sampled_from(b"\n\r:\\\x00\xff")))
    parser = FrameParser("1.2", max_frame_size=200, max_header_count=5, max_header_line=80)
    with contextlib.suppress(ProtocolError):
        parser.feed(bytes(mutated))
