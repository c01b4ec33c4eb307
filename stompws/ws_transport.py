"""STOMP over WebSocket (ws://, wss://): the handshake by ``websocket-client``, the framing here.

We open the TCP (and TLS) socket ourselves, so that connect errors and certificate checks
read the same as over plain TCP, and hand it to websocket-client for the opening handshake.
After it, this module reads and writes RFC 6455 frames on the socket itself, because
websocket-client's per-message path was most of the client's CPU (measured with
benchmarks/bench_e2e.py, see benchmarks/RESULTS.md):

* Reading: websocket-client makes two or three ``recv`` calls per message (header, length,
  payload) and builds an object per frame. We read up to 256 KiB a call and hand the STOMP
  parser the payloads of every data frame found, joined: STOMP over WebSocket is a byte
  stream whose frames may be split across messages or share one anyway, so message
  boundaries carry no meaning for the parser. Fragments (continuation frames) need no
  reassembly for the same reason, and a large payload goes to the parser as it arrives.
  Pings are answered, a close is answered and raised after the data before it.
* Writing: a frame costs one header, a mask and one ``sendall``. Mask keys come from
  ``os.urandom`` (the strong source RFC 6455 section 5.3 asks for), 1,024 keys a call
  instead of one call a frame. Large payloads are masked with ``bytes.translate``, four
  strided passes of a C loop: three times as fast as the integer XOR websocket-client uses.
* No UTF-8 check of received text messages (websocket-client's costs about 50 µs in pure
  Python, and RabbitMQ sends non-UTF-8 bodies inside text messages anyway): the STOMP
  parser checks what STOMP requires (a UTF-8 header block).

Choices required by brokers:

* A frame that is valid UTF-8 goes out as a text message (ActiveMQ ignores binary ones),
  anything else as binary (RabbitMQ closes with 1007 on a text message that is not UTF-8).
* One whole frame per message, each heart-beat its own message: ActiveMQ Classic cannot
  reassemble frames split across messages.

Threads: one lock serialises every write (our frames, and the pongs and close replies the
reader sends), and ``close`` takes it too, so that the socket is never closed under a write.
The reader never waits for that lock: a write may be blocked on a broker that is waiting for
us to read. A pong it cannot send at once goes out in front of the next write (heart-beats
make one soon); a close answer it cannot send is skipped, as the socket goes down anyway.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import string
import threading
from collections.abc import Sequence
from typing import Final, NoReturn

import websocket

from .errors import ConnectError, ConnectionClosed, ConnectTimeout, UsageError
from .transport import (
    Endpoint,
    HandshakeGuard,
    connect_socket,
    make_blocking,
    readable_now,
    receive,
    shutdown,
)

__all__ = ["WebSocketTransport", "subprotocols_for"]

_TEXT: Final = 0x1
_BINARY: Final = 0x2
_CLOSE: Final = 0x8
_PING: Final = 0x9
_PONG: Final = 0xA
_STATUS_NORMAL: Final = 1000


def subprotocols_for(versions: tuple[str, ...]) -> list[str]:
    """v12.stomp, v11.stomp, v10.stomp for the versions offered, highest first."""
    return [f"v{version.replace('.', '')}.stomp" for version in sorted(versions, reverse=True)]


class WebSocketTransport:
    def __init__(self, endpoint: Endpoint, ws: websocket.WebSocket) -> None:
        self.endpoint = endpoint
        self._ws = ws  # kept for its shutdown(); after the handshake we frame ourselves
        sock = ws.sock
        if sock is None:
            raise ConnectError(f"WebSocket handshake with {endpoint.url} left no socket")
        self._sock: socket.socket = sock
        self.subprotocol: str | None = ws.subprotocol
        self._aborted = False
        self._write_lock = threading.Lock()  # every write, and close (module docstring)
        self._masks = _MaskKeys()  # used under _write_lock only
        self._buffer = bytearray()  # read from the socket, not yet handed out (reader only)
        self._payload_left = 0  # bytes of the current data frame's payload still to come
        self._peer_close: ConnectionClosed | None = None  # a close seen, raised next recv
        self._close_sent = False
        self._pong_due: bytes | None = None  # a ping's payload still to answer

    @classmethod
    def open(
        cls,
        endpoint: Endpoint,
        *,
        guard: HandshakeGuard,
        ssl_context: ssl.SSLContext | None,
        ws_headers: dict[str, str] | None,
        versions: tuple[str, ...],
        write_timeout: float,
    ) -> WebSocketTransport:
        handshake_headers = _checked_headers(ws_headers)
        sock = connect_socket(endpoint, guard, ssl_context)
        offered = subprotocols_for(versions)
        try:
            ws = websocket.create_connection(
                endpoint.request_url,
                timeout=guard.remaining(),
                socket=sock,
                subprotocols=offered,
                header=handshake_headers,
                skip_utf8_validation=True,
                enable_multithread=True,
            )
        except websocket.WebSocketBadStatusException as error:
            sock.close()
            raise ConnectError(
                f"WebSocket handshake with {endpoint.url} refused: HTTP {error.status_code}"
            ) from None
        except (websocket.WebSocketTimeoutException, TimeoutError):
            sock.close()
            raise ConnectTimeout(
                f"WebSocket handshake with {endpoint.url} did not finish within {guard.timeout:g} s"
            ) from None
        except (websocket.WebSocketException, OSError) as error:
            sock.close()
            raise ConnectError(
                f"WebSocket handshake with {endpoint.url} failed: {error}"
            ) from error
        if ws.subprotocol is not None and ws.subprotocol.lower() not in offered:
            ws.shutdown()  # type: ignore[no-untyped-call]
            raise ConnectError(
                f"{endpoint.url} chose WebSocket subprotocol {ws.subprotocol!r}, "
                f"which was not offered ({', '.join(offered)})"
            )
        make_blocking(sock, write_timeout)
        return cls(endpoint, ws)

    # -- writing (any thread) ---------------------------------------------------------------

    def send(self, data: bytes) -> None:
        self._write(_message_opcode(data), (data,))

    def _write(self, opcode: int | None, frames: Sequence[bytes], *, wait: bool = True) -> bool:
        """Frame, mask and write ``frames``; ``opcode`` None: the right one for each.

        ``wait=False`` (the reader's own writes) gives up at once, returning False, when
        another thread is writing: that write may be blocked on a broker that waits for
        us to read, and the reader must go on reading.
        """
        if not self._write_lock.acquire(blocking=wait):
            return False
        try:
            masks = self._masks
            wire = b"".join(
                [_encode(opcode or _message_opcode(f), f, masks.take()) for f in frames]
            )
            pong = self._pong_due
            if pong is not None:  # a ping the reader could not answer itself: now
                self._pong_due = None
                wire = _encode(_PONG, pong, masks.take()) + wire
            self._sock.sendall(wire)
        except OSError as error:
            raise ConnectionClosed(f"write to {self.endpoint.url} failed: {error}") from error
        finally:
            self._write_lock.release()
        return True

    def close_gracefully(self) -> None:
        try:
            self._send_close(_STATUS_NORMAL.to_bytes(2, "big"), wait=True)
        except ConnectionClosed:
            self.abort()

    def _send_close(self, payload: bytes, *, wait: bool) -> None:
        """Send a close frame unless one went out already (RFC 6455 5.5.1: only one)."""
        if not self._close_sent and self._write(_CLOSE, (payload,), wait=wait):
            self._close_sent = True

    # -- reading (the reader thread only) -----------------------------------------------------

    def recv(self) -> bytes:
        """The payload bytes of every data frame read so far, joined (at least one byte)."""
        while True:
            if self._peer_close is not None:
                raise self._peer_close
            data = self._take_payloads()
            if data:
                return data
            if self._peer_close is not None:
                raise self._peer_close
            self._fill()

    def _fill(self) -> None:
        self._buffer += receive(
            self._sock,
            self,
            f"connection to {self.endpoint.url} lost: the broker closed the TCP connection "
            "without a WebSocket close",
        )

    def _take_payloads(self) -> bytes:
        """Parse the frames in the buffer: payloads out, control frames handled.

        A data frame's payload is handed out as far as it has arrived (the STOMP parser
        streams), so a large message is never held here whole.
        """
        buf = self._buffer
        end = len(buf)
        pos = 0
        out: list[bytes | bytearray] = []
        while pos < end:
            left = self._payload_left
            if left:
                take = min(left, end - pos)
                out.append(buf[pos : pos + take])
                pos += take
                self._payload_left = left - take
                continue
            if end - pos < 2:
                break
            first, second = buf[pos], buf[pos + 1]
            if second & 0x80:
                self._fail("the broker sent a masked frame (RFC 6455 5.1)")
            if first & 0x70:
                self._fail("the broker set reserved bits no extension was agreed for")
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
            if opcode <= _BINARY:  # continuation, text, binary: all one byte stream
                pos += head
                self._payload_left = length
                continue
            if opcode not in (_CLOSE, _PING, _PONG):
                self._fail(f"the broker sent a frame with unknown opcode {opcode}")
            if length > 125 or not first & 0x80:
                self._fail("the broker sent a control frame that is fragmented or too long")
            if end - pos < head + length:
                break
            payload = bytes(buf[pos + head : pos + head + length])
            pos += head + length
            if opcode == _PING:
                # Answered now, or in front of the next write (see _write).
                self._pong_due = payload
                self._write(None, (), wait=False)
            elif opcode == _CLOSE:
                self._peer_closed(payload)
                break
        del buf[:pos]
        if len(out) == 1:
            return bytes(out[0])
        return b"".join(out)

    def _peer_closed(self, payload: bytes) -> None:
        code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
        reason = payload[2:].decode("utf-8", "replace") or f"{self.endpoint.url} closed"
        self._peer_close = ConnectionClosed(reason, code=code)
        # The answer echoes the code (RFC 6455 5.5.1). The broker may have gone already:
        # its close is what we report either way.
        # Not waiting for a writer: the socket goes down anyway.
        with contextlib.suppress(ConnectionClosed):
            self._send_close(payload[:2], wait=False)

    def _fail(self, what: str) -> NoReturn:
        raise ConnectionClosed(f"connection to {self.endpoint.url} lost: {what}")

    def readable_now(self) -> bool:
        return readable_now(self._sock)

    def abort(self) -> None:
        self._aborted = True
        shutdown(self._sock)

    def close(self) -> None:
        # Under the write lock: never close the socket while another thread writes to it
        # (a known crash with TLS).
        with self._write_lock:
            self._ws.shutdown()  # type: ignore[no-untyped-call]


class _MaskKeys:
    """Mask keys from ``os.urandom`` (RFC 6455 5.3: a strong source of entropy), fetched
    1,024 at a time: one system call per 1,024 frames instead of one per frame. Not
    thread-safe: the transport uses it under its write lock."""

    _BATCH = 4 * 1024

    def __init__(self) -> None:
        self._pool = os.urandom(self._BATCH)
        self._at = 0

    def take(self) -> bytes:
        at = self._at
        if at >= self._BATCH:
            self._pool = os.urandom(self._BATCH)
            at = 0
        self._at = at + 4
        return self._pool[at : at + 4]


def _message_opcode(data: bytes) -> int:
    return _TEXT if data.isascii() or _is_utf8(data) else _BINARY


# payload -> payload XOR byte: 256 tables of 256 bytes, for masking with bytes.translate.
_XOR_TABLES: Final = [bytes(value ^ key for value in range(256)) for key in range(256)]
_TRANSLATE_FROM: Final = 1024  # below this, one integer XOR is faster than four passes


def _encode(opcode: int, payload: bytes, key: bytes) -> bytes:
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


# An HTTP header name is a "token" (RFC 9110, 5.1 and 5.6.2).
_TOKEN: Final = frozenset("!#$%&'*+-.^_`|~" + string.ascii_letters + string.digits)


def _checked_headers(headers: dict[str, str] | None) -> list[str]:
    """The handshake's extra header lines, refusing what would change the request's shape.

    websocket-client writes each line as given, so a CR or LF in a name or value would end
    the line and add headers (or a body) of the caller's choosing to the request: HTTP
    header injection. Values are not shown in the error: they are often credentials.
    """
    lines = []
    for name, value in (headers or {}).items():
        name, value = str(name), str(value)
        if not name or not _TOKEN.issuperset(name):
            raise UsageError(f"ws_headers: {name!r} is not a valid HTTP header name")
        if "\r" in value or "\n" in value or "\x00" in value:
            raise UsageError(
                f"ws_headers: the value of {name!r} contains a CR, LF or NUL, which would "
                "end the header line and inject what follows into the handshake"
            )
        lines.append(f"{name}: {value}")
    return lines


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
