"""RFC 6455 framing for a WebSocket client, sans-IO: bytes in, payloads and control frames
out; messages in, bytes out. No sockets, threads or clocks (``ws_transport`` does the I/O).

Our own codec rather than websocket-client's, whose per-message path was most of the
client's CPU (measured with benchmarks/bench_e2e.py, see benchmarks/RESULTS.md):

* Reading: websocket-client makes two or three ``recv`` calls per message (header, length,
  payload) and builds an object per frame. ``FrameReader`` takes whatever one large read
  gave and returns the payloads of every data frame in it, joined: STOMP over WebSocket is
  a byte stream whose frames may be split across messages or share one anyway, so message
  boundaries carry no meaning for the STOMP parser. Fragments (continuation frames) need no
  reassembly for the same reason, and a large payload goes out as far as it has arrived.
* Writing: a frame costs one header and a mask. Mask keys come from ``os.urandom`` (the
  strong source RFC 6455 section 5.3 asks for), 1,024 keys a call instead of one call a
  frame. Large payloads are masked with ``bytes.translate``, four strided passes of a C
  loop: three times as fast as the integer XOR websocket-client uses.
* No UTF-8 check of received text messages (websocket-client's costs about 50 µs in pure
  Python, and RabbitMQ sends non-UTF-8 bodies inside text messages anyway): the STOMP
  parser checks what STOMP requires (a UTF-8 header block).

Choices required by brokers:

* A frame that is valid UTF-8 goes out as a text message (ActiveMQ ignores binary ones),
  anything else as binary (RabbitMQ closes with 1007 on a text message that is not UTF-8).
* One whole STOMP frame per message (``FrameWriter.message``): ActiveMQ Classic cannot
  reassemble frames split across messages.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

__all__ = [
    "BINARY",
    "CLOSE",
    "PING",
    "PONG",
    "STATUS_NORMAL",
    "STATUS_PROTOCOL_ERROR",
    "TEXT",
    "Close",
    "FrameReader",
    "FrameWriter",
    "FramingError",
    "MaskKeys",
    "Received",
    "encode_frame",
    "message_opcode",
]

TEXT: Final = 0x1
BINARY: Final = 0x2
CLOSE: Final = 0x8
PING: Final = 0x9
PONG: Final = 0xA
STATUS_NORMAL: Final = 1000
STATUS_PROTOCOL_ERROR: Final = 1002


class FramingError(Exception):
    """The peer broke RFC 6455; the message says how. The transport ends the connection."""


@dataclass(frozen=True)
class Close:
    """The peer's close frame."""

    code: int | None
    reason: str

    @property
    def answer(self) -> bytes:
        """The payload of our reply: the same code (RFC 6455 5.5.1), no reason."""
        return b"" if self.code is None else self.code.to_bytes(2, "big")


@dataclass(frozen=True)
class Received:
    """What one ``FrameReader.receive_data`` found, in the order that matters: ``data``
    (the payload bytes of data frames, joined) all came before ``close``."""

    data: bytes
    pings: tuple[bytes, ...] = ()  # the payloads of pings, to answer with pongs
    close: Close | None = None  # the peer's close: nothing after it was read


class FrameReader:
    """Server frames in, payload bytes and control frames out (one reader thread's)."""

    def __init__(self) -> None:
        self._buffer = bytearray()  # received, not yet parsed
        self._payload_left = 0  # bytes of the current data frame's payload still to come
        self._fragmented = False  # a data frame without FIN came: continuations may follow
        self._closed = False

    def receive_data(self, data: bytes) -> Received:
        """Parse ``data`` after what came before; raises ``FramingError``.

        A data frame's payload is handed out as far as it has arrived, so a large message
        is never held here whole. After a close, further data is ignored (RFC 6455 5.5.1).
        """
        if self._closed:
            return Received(b"")
        buf = self._buffer
        if not buf and len(data) <= self._payload_left:
            # The middle of a large message: the chunk is all payload, handed on as it is
            # (no copy: a frame near max_frame_size must not be held two or three times).
            self._payload_left -= len(data)
            return Received(data)
        buf += data
        end = len(buf)
        pos = 0
        view = memoryview(buf)  # payload slices are copied once, by the join below
        out: list[memoryview] = []
        pings: list[bytes] = []
        close: Close | None = None
        while pos < end:
            left = self._payload_left
            if left:
                take = min(left, end - pos)
                out.append(view[pos : pos + take])
                pos += take
                self._payload_left = left - take
                continue
            if end - pos < 2:
                break
            first, second = buf[pos], buf[pos + 1]
            if second & 0x80:
                raise FramingError("the broker sent a masked frame (RFC 6455 5.1)")
            if first & 0x70:
                raise FramingError("the broker set reserved bits no extension was agreed for")
            length = second & 0x7F
            head = 2
            if length == 126:
                head = 4
                if end - pos < head:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
            elif length == 127:
                head = 10
                if end - pos < head:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
            opcode = first & 0x0F
            if opcode <= BINARY:  # continuation, text, binary: all one byte stream
                # The payloads are joined without reassembly, but the sequence is still
                # checked (RFC 6455 5.4): a broker that gets it wrong has lost track of its
                # messages, and what it sends next cannot be trusted as STOMP either.
                if opcode == 0 and not self._fragmented:
                    raise FramingError(
                        "the broker sent a continuation frame with no message to continue"
                    )
                if opcode != 0 and self._fragmented:
                    raise FramingError(
                        "the broker started a message before its fragmented one ended"
                    )
                self._fragmented = not first & 0x80
                pos += head
                self._payload_left = length
                continue
            if opcode not in (CLOSE, PING, PONG):
                raise FramingError(f"the broker sent a frame with unknown opcode {opcode}")
            if length > 125 or not first & 0x80:
                raise FramingError("the broker sent a control frame that is fragmented or too long")
            if end - pos < head + length:
                break
            payload = bytes(buf[pos + head : pos + head + length])
            pos += head + length
            if opcode == PING:
                pings.append(payload)
            elif opcode == CLOSE:
                close = _close(payload)
                self._closed = True
                pos = end
                break
        joined = b"".join(out)
        del out  # the slices, then the view, before the buffer may shrink
        view.release()
        del buf[:pos]
        return Received(joined, tuple(pings), close)


def _close(payload: bytes) -> Close:
    if len(payload) == 1:
        # A status code is two bytes; one cannot be echoed back (RFC 6455 5.5.1, 7.1.5).
        raise FramingError("the broker sent a close frame with a 1-byte payload")
    code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
    return Close(code, payload[2:].decode("utf-8", "replace"))


class FrameWriter:
    """Client frames out, each final and masked (RFC 6455 5.2). Not thread-safe: the
    transport uses it under its write lock. ``random`` is where mask keys come from."""

    def __init__(self, random: Callable[[int], bytes] = os.urandom) -> None:
        self._keys = MaskKeys(random)

    def message(self, data: bytes) -> bytes:
        """One whole message: text when ``data`` is UTF-8, binary otherwise."""
        return encode_frame(message_opcode(data), data, self._keys.take())

    def control(self, opcode: int, payload: bytes) -> bytes:
        return encode_frame(opcode, payload, self._keys.take())


class MaskKeys:
    """Mask keys from a strong source (RFC 6455 5.3), fetched 1,024 at a time: one system
    call per 1,024 frames instead of one per frame. Not thread-safe."""

    _BATCH = 4 * 1024

    def __init__(self, random: Callable[[int], bytes] = os.urandom) -> None:
        self._random = random
        self._pool = random(self._BATCH)
        self._at = 0

    def take(self) -> bytes:
        at = self._at
        if at >= self._BATCH:
            self._pool = self._random(self._BATCH)
            at = 0
        self._at = at + 4
        return self._pool[at : at + 4]


def message_opcode(data: bytes) -> int:
    return TEXT if data.isascii() or _is_utf8(data) else BINARY


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# payload -> payload XOR byte: 256 tables of 256 bytes, for masking with bytes.translate.
_XOR_TABLES: Final = [bytes(value ^ key for value in range(256)) for key in range(256)]
_TRANSLATE_FROM: Final = 1024  # below this, one integer XOR is faster than four passes


def encode_frame(opcode: int, payload: bytes, key: bytes) -> bytes:
    """One final, masked client frame (RFC 6455 5.2) carrying ``payload``."""
    length = len(payload)
    if length < 126:
        head = bytes((0x80 | opcode, 0x80 | length))
    elif length < 0x10000:
        head = bytes((0x80 | opcode, 0xFE)) + length.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0xFF)) + length.to_bytes(8, "big")
    head += key
    if length < _TRANSLATE_FROM:
        repeated = key * (length // 4) + key[: length % 4]
        masked = int.from_bytes(payload, "little") ^ int.from_bytes(repeated, "little")
        return head + masked.to_bytes(length, "little")
    # Bytes 0, 4, 8, ... are XORed with key[0], bytes 1, 5, 9, ... with key[1], and so on:
    # four strided slices, each mapped through a table in C, written into place.
    start = len(head)
    wire = bytearray(head)
    wire += payload
    for lane in range(4):
        wire[start + lane :: 4] = payload[lane::4].translate(_XOR_TABLES[key[lane]])
    return bytes(wire)
