"""stompws.ws_framing, the sans-IO RFC 6455 codec: bytes in, payloads and control frames out;
messages in, bytes out. No sockets (the transport around it: tests/test_transport_ws.py)."""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stompws.ws_framing import (
    BINARY,
    CLOSE,
    PING,
    PONG,
    TEXT,
    Close,
    FrameReader,
    FrameWriter,
    FramingError,
    Received,
    encode_frame,
)


def server_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    n = len(payload)
    first = (0x80 if fin else 0) | opcode
    if n < 126:
        head = bytes((first, n))
    elif n < 65536:
        head = bytes((first, 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((first, 127)) + n.to_bytes(8, "big")
    return head + payload


def unmask(key: bytes, data: bytes) -> bytes:
    return bytes(byte ^ key[i % 4] for i, byte in enumerate(data))


def decode_client_frame(wire: bytes) -> tuple[int, bytes]:
    """The opcode and unmasked payload of the one client frame ``wire`` holds."""
    b0, b1 = wire[0], wire[1]
    assert b0 & 0x80 and b1 & 0x80  # final and masked
    n, at = b1 & 0x7F, 2
    if n == 126:
        n, at = int.from_bytes(wire[2:4], "big"), 4
    elif n == 127:
        n, at = int.from_bytes(wire[2:10], "big"), 10
    key, payload = wire[at : at + 4], wire[at + 4 :]
    assert len(payload) == n
    return b0 & 0x0F, unmask(key, payload)


def is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@pytest.mark.parametrize("size", [0, 1, 125, 126, 1023, 1024, 65535, 65536, 300_000])
@pytest.mark.parametrize("kind", ["ascii", "utf8", "random"])
def test_messages_round_trip_with_the_right_opcode(size: int, kind: str) -> None:
    if kind == "ascii":
        data = b"a" * size
    elif kind == "utf8":
        data = ("é" * size).encode()[:size].ljust(size, b"a")
        data = data if is_utf8(data) else data[:-1] + b"a"
    else:
        data = os.urandom(size)
    opcode, payload = decode_client_frame(FrameWriter().message(data))
    assert payload == data
    assert opcode == (TEXT if is_utf8(data) else BINARY)


def test_non_utf8_goes_out_binary_and_utf8_text() -> None:
    writer = FrameWriter()
    assert decode_client_frame(writer.message(b"\xff\xfe"))[0] == BINARY
    assert decode_client_frame(writer.message("héllo".encode()))[0] == TEXT


def test_rfc_6455_masked_hello() -> None:
    # RFC 6455 5.7: a single-frame masked text message.
    wire = encode_frame(TEXT, b"Hello", bytes.fromhex("37fa213d"))
    assert wire == bytes.fromhex("818537fa213d7f9f4d5158")


def test_mask_keys_come_from_the_given_source_in_batches() -> None:
    calls: list[int] = []

    def source(n: int) -> bytes:
        calls.append(n)
        return bytes(range(4)) * (n // 4)

    writer = FrameWriter(random=source)
    for _ in range(1025):
        wire = writer.control(PONG, b"")
        assert wire == bytes((0x80 | PONG, 0x80)) + bytes(range(4))
    assert calls == [4096, 4096]


def test_split_fragmented_and_many_frames_one_byte_at_a_time() -> None:
    wire = (
        server_frame(TEXT, b"CONNECTED\n\n\x00")
        + server_frame(TEXT, b"MESS", fin=False)
        + server_frame(0, b"AGE\n\nx\x00")
        + server_frame(BINARY, b"\n")
    )
    reader = FrameReader()
    got = b""
    for i in range(len(wire)):
        received = reader.receive_data(wire[i : i + 1])
        assert received.pings == () and received.close is None
        got += received.data
    assert got == b"CONNECTED\n\n\x00MESSAGE\n\nx\x00\n"


def test_a_large_payload_streams_as_it_arrives() -> None:
    body = os.urandom(1 << 20)
    wire = server_frame(BINARY, body)
    reader = FrameReader()
    first = reader.receive_data(wire[: 10 + 1000])
    assert first.data == body[:1000]  # handed out before the rest arrived
    assert reader.receive_data(wire[10 + 1000 :]).data == body[1000:]


def test_pings_and_a_close_after_data() -> None:
    reader = FrameReader()
    received = reader.receive_data(
        server_frame(PING, b"hi")
        + server_frame(TEXT, b"data")
        + server_frame(CLOSE, (1000).to_bytes(2, "big") + b"bye")
        + server_frame(TEXT, b"after the close")
    )
    assert received == Received(b"data", (b"hi",), Close(1000, "bye"))
    assert received.close is not None and received.close.answer == (1000).to_bytes(2, "big")
    assert reader.receive_data(server_frame(TEXT, b"more")) == Received(b"")


def test_a_close_without_code_is_answered_without_one() -> None:
    received = FrameReader().receive_data(server_frame(CLOSE, b""))
    assert received.close == Close(None, "")
    assert received.close.answer == b""


def test_a_pong_is_ignored() -> None:
    assert FrameReader().receive_data(server_frame(PONG, b"x") + server_frame(TEXT, b"y")) == (
        Received(b"y")
    )


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        (bytes((0x81, 0x81, 1, 2, 3, 4, 0)), "masked"),
        (bytes((0xC1, 0)), "reserved bits"),
        (bytes((0x83, 0)), "unknown opcode 3"),
        (bytes((0x09, 0)), "fragmented"),
        (bytes((0x89, 126, 0, 200)), "too long"),
    ],
)
def test_protocol_violations_are_framing_errors(bad: bytes, why: str) -> None:
    with pytest.raises(FramingError, match=why):
        FrameReader().receive_data(bad)


@given(
    st.lists(st.tuples(st.sampled_from([TEXT, BINARY, PING]), st.binary(max_size=300))),
    st.lists(st.integers(min_value=1, max_value=400), min_size=1),
)
def test_any_split_gives_the_same_payloads(frames: list[Any], cuts: list[int]) -> None:
    wire = b"".join(server_frame(op, p if op != PING else p[:125]) for op, p in frames)
    expected_data = b"".join(p for op, p in frames if op != PING)
    expected_pings = [p[:125] for op, p in frames if op == PING]
    reader = FrameReader()
    data, pings, at, turn = b"", [], 0, 0
    while at < len(wire):
        step = cuts[turn % len(cuts)]
        received = reader.receive_data(wire[at : at + step])
        data += received.data
        pings += received.pings
        at += step
        turn += 1
    assert data == expected_data
    assert pings == expected_pings
