"""A scripted, socket-level STOMP peer on 127.0.0.1 for client tests.

The test writes the exact bytes (and chooses when) the broker sends, and sees every byte the
client sent: over TCP (stomp://), TLS (stomp+ssl://), WebSocket (ws://) and WebSocket over
TLS (wss://)::

    with ScriptedPeer("ws") as peer:
        client = stompws.Client(peer.url, ssl_context=peer.ssl_context_for_client(), ...)
        ... client.connect() on a test thread ...
        conn = peer.accept()
        conn.expect("CONNECT")
        conn.connected(heartbeat="0,0")

Choices:

* Connections are accepted by a background thread, so that reconnects can be scripted:
  ``accept()`` hands out the next connection, in order.
* Each connection has a reader thread that reads (and, for WebSocket, unmasks) everything the
  client sends, for as long as the test does not call ``stop_reading()``: the kernel buffers
  never fill by accident, and ``received_bytes`` holds the whole STOMP stream for assertions
  and failure messages.
* TLS runs through ``ssl.MemoryBIO`` over a plain socket: an ``SSLSocket`` must not be read
  and written from two threads at once, and a plain socket is what ``reset()`` (SO_LINGER 0)
  and ``shutdown()`` need anyway.
* Only the test's thread closes a socket's descriptor, after the reader has been woken by a
  shutdown and joined: closing a descriptor under a blocked ``recv`` neither wakes it nor
  sends a RST until that ``recv`` returns.
* Threads are named ``peer-*`` so that the client's thread-leak check does not count them.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import itertools
import queue
import socket
import ssl
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Final, Literal

from stompws import HEARTBEAT, Frame, FrameParser, Heartbeat, ProtocolError

from ..security.certs import Certificates, make_certificates

__all__ = [
    "PeerConnection",
    "ScriptedPeer",
    "TransportName",
    "frame_bytes",
    "message_bytes",
]

TransportName = Literal["tcp", "tls", "ws", "wss"]
HeaderInput = Mapping[str, str] | Sequence[tuple[str, str]]

_SOCKET_TIMEOUT: Final = 10.0  # bounds the peer's own writes; the reader just reads again
_JOIN_TIMEOUT: Final = 3.0
_WS_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_CONTINUATION, _TEXT, _BINARY, _CLOSE, _PING, _PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_numbers = itertools.count(1)


# -- frames the peer sends (raw bytes, no escaping: the test says exactly what goes out) -----


def frame_bytes(
    command: str,
    headers: HeaderInput | None = None,
    body: bytes | str = b"",
    *,
    content_length: bool = True,
) -> bytes:
    """One STOMP frame as bytes. Header values go out as given (no escaping), so that a test
    can also send what a broken broker would; content-length is added for a non-empty body
    unless a header already names it or ``content_length`` is false."""
    pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers or ())
    data = body.encode() if isinstance(body, str) else body
    if data and content_length and not any(name == "content-length" for name, _ in pairs):
        pairs.append(("content-length", str(len(data))))
    head = "".join(f"{name}:{value}\n" for name, value in pairs)
    return f"{command}\n{head}\n".encode() + data + b"\x00"


def message_bytes(
    destination: str,
    subscription: str,
    body: bytes | str,
    *,
    message_id: str,
    ack: str | None = None,
    headers: HeaderInput | None = None,
) -> bytes:
    pairs = [
        ("destination", destination),
        ("subscription", subscription),
        ("message-id", message_id),
    ]
    if ack is not None:
        pairs.append(("ack", ack))
    extra = headers.items() if isinstance(headers, Mapping) else headers or ()
    pairs.extend(extra)
    return frame_bytes("MESSAGE", pairs, body)


def _shortened(data: bytes, keep: int = 400) -> str:
    # A failure message shows the frames around a large body, not megabytes of it.
    if len(data) <= 2 * keep:
        return repr(data)
    return f"{data[:keep]!r} ...({len(data) - 2 * keep} bytes)... {data[-keep:]!r}"


def _header_kwargs(headers: Mapping[str, str]) -> list[tuple[str, str]]:
    # Python names cannot hold dashes: ``user_id="x"`` means the header ``user-id``.
    return [(name.replace("_", "-"), value) for name, value in headers.items()]


# -- certificates ----------------------------------------------------------------------------


_certificate_directories: list[tempfile.TemporaryDirectory[str]] = []


@functools.lru_cache(maxsize=1)
def _certificates() -> Certificates:
    # One set per test process: making them costs a few openssl runs. The directory lives as
    # long as the process and is removed when it exits.
    directory = tempfile.TemporaryDirectory(prefix="stompws-peer-certs-")
    _certificate_directories.append(directory)
    return make_certificates(Path(directory.name))


# -- the byte channel under STOMP (plain or TLS) ---------------------------------------------


class _Channel:
    """A plain socket, or TLS over it through memory BIOs (see the module docstring)."""

    def __init__(self, sock: socket.socket, tls: ssl.SSLContext | None) -> None:
        self.sock = sock
        self._send_lock = threading.Lock()  # writes go out whole and in order
        self._tls_lock = threading.Lock()  # an SSLObject is not thread-safe
        self._tls: ssl.SSLObject | None = None
        if tls is not None:
            self._incoming = ssl.MemoryBIO()
            self._outgoing = ssl.MemoryBIO()
            self._tls = tls.wrap_bio(self._incoming, self._outgoing, server_side=True)

    def handshake(self) -> None:
        tls = self._tls
        if tls is None:
            return
        while True:
            with self._send_lock:
                with self._tls_lock:
                    try:
                        tls.do_handshake()
                        done = True
                    except ssl.SSLWantReadError:
                        done = False
                    out = self._outgoing.read()
                if out:
                    self.sock.sendall(out)
            if done:
                return
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the client closed during the TLS handshake")
            with self._tls_lock:
                self._incoming.write(data)

    def recv(self) -> bytes:
        """The next bytes from the client; b"" at its end."""
        tls = self._tls
        if tls is None:
            return self.sock.recv(65536)
        while True:
            with self._tls_lock:
                try:
                    data = tls.read(65536)
                except ssl.SSLWantReadError:
                    data = b""
                except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                    return b""
                pending = self._outgoing.pending
            if pending:
                self._flush_tls()
            if data:
                return data
            raw = self.sock.recv(65536)
            if not raw:
                return b""
            with self._tls_lock:
                self._incoming.write(raw)

    def _flush_tls(self) -> None:
        with self._send_lock:
            with self._tls_lock:
                out = self._outgoing.read()
            if out:
                self.sock.sendall(out)

    def sendall(self, data: bytes) -> None:
        tls = self._tls
        with self._send_lock:
            if tls is None:
                self.sock.sendall(data)
                return
            with self._tls_lock:
                tls.write(data)
                out = self._outgoing.read()
            self.sock.sendall(out)

    def close_notify(self) -> None:
        """TLS's own clean end (close_notify), before the TCP one."""
        tls = self._tls
        if tls is None:
            return
        with self._send_lock:
            with self._tls_lock:
                with contextlib.suppress(ssl.SSLError):
                    tls.unwrap()
                out = self._outgoing.read()
            with contextlib.suppress(OSError):
                self.sock.sendall(out)


# -- WebSocket framing (server side: client frames are masked, ours are not) -----------------


def _ws_frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    first = (0x80 if fin else 0) | opcode
    size = len(payload)
    if size < 126:
        head = bytes((first, size))
    elif size < 65536:
        head = bytes((first, 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((first, 127)) + size.to_bytes(8, "big")
    return head + payload


def _unmask(data: bytes, mask: bytes) -> bytes:
    # One big-integer XOR instead of a Python loop per byte: large bodies stay fast.
    key = (mask * (len(data) // 4 + 1))[: len(data)]
    value = int.from_bytes(data, "big") ^ int.from_bytes(key, "big")
    return value.to_bytes(len(data), "big")


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class PeerConnection:
    """One accepted connection, scripted by the test."""

    def __init__(
        self,
        sock: socket.socket,
        kind: TransportName,
        tls: ssl.SSLContext | None,
        subprotocol: str | None,
        handshake_response: bytes | None,
        answer_disconnect: bool,
    ) -> None:
        self.number = next(_numbers)
        self.answer_disconnect = answer_disconnect
        self.kind = kind
        self.client_address: tuple[str, int] = sock.getpeername()  # where the client is
        self._channel = _Channel(sock, tls)
        self._websocket = kind in ("ws", "wss")
        self._subprotocol = subprotocol
        self._handshake_response = handshake_response
        self._condition = threading.Condition()
        self._stream = bytearray()  # the STOMP bytes the client sent (unmasked, decrypted)
        self._wire_received = 0  # bytes read after TLS, before WebSocket decoding
        self._items: list[Frame | Heartbeat] = []
        self._cursor = 0  # the next item expect() looks at
        self._parser = FrameParser("1.2")
        self.parse_error: ProtocolError | None = None
        self._ws_buffer = bytearray()
        self.ws_messages: list[tuple[int, bytes]] = []  # (opcode, payload) of client frames
        self.pongs: list[bytes] = []
        self.close_frame: bytes | None = None  # the payload of the client's WebSocket close
        self.request_headers: dict[str, str] = {}  # the WebSocket handshake's, lower-case
        self.failure: BaseException | None = None  # why the reader stopped, if not an EOF
        self._eof = False  # the reader ended: the client's close, an error, close()/reset()
        self._ready = threading.Event()  # TLS and WebSocket handshakes done (or failed)
        self._paused = False  # stop_reading() until resume_reading(), under _condition
        self._message_ids = itertools.count(1)
        self._torn_down = False
        self._reader = threading.Thread(
            target=self._run, name=f"peer-conn-{self.number}", daemon=True
        )
        self._reader.start()

    def __repr__(self) -> str:
        return f"<PeerConnection {self.number} {self.kind}>"

    # -- what the client sent --------------------------------------------------------------

    @property
    def received_bytes(self) -> bytes:
        """Every STOMP byte the client sent so far (WebSocket payloads joined)."""
        with self._condition:
            return bytes(self._stream)

    @property
    def frames(self) -> list[Frame]:
        with self._condition:
            return [item for item in self._items if isinstance(item, Frame)]

    def count(self, command: str, **headers: str) -> int:
        """How many frames with ``command`` (and these headers) the client sent so far."""
        wanted = _header_kwargs(headers)
        return sum(
            1
            for frame in self.frames
            if frame.command == command
            and all(frame.headers.get(name) == value for name, value in wanted)
        )

    def subscribe_count(self, subscription_id: str) -> int:
        return self.count("SUBSCRIBE", id=subscription_id)

    def describe(self) -> str:
        """For assertion messages: what the client sent, and how the connection ended."""
        with self._condition:
            state = "client closed" if self._eof else "open"
            failure = f", reader failed: {self.failure!r}" if self.failure else ""
            return f"{self!r} ({state}{failure}) received {_shortened(bytes(self._stream))}"

    def next_item(self, timeout: float = 2.0) -> Frame | Heartbeat | None:
        """The next frame or heart-beat not looked at yet; None when the client ended."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while self._cursor >= len(self._items):
                if self._eof or self.parse_error is not None or self._reader_gone():
                    return None
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"nothing more from the client within {timeout:g} s; {self.describe()}"
                    )
                self._condition.wait(remaining)
            item = self._items[self._cursor]
            self._cursor += 1
            return item

    def expect(self, command: str, timeout: float = 2.0) -> Frame:
        """The next frame (heart-beats skipped), which must be ``command``."""
        deadline = time.monotonic() + timeout
        while True:
            item = self.next_item(max(deadline - time.monotonic(), 0.0))
            if item is None:
                raise AssertionError(f"expected {command}, the client ended; {self.describe()}")
            if isinstance(item, Frame):
                if item.command != command:
                    raise AssertionError(
                        f"expected {command}, got {item.command} {dict(item.headers)}; "
                        f"{self.describe()}"
                    )
                return item

    def skip_to(self, command: str, timeout: float = 2.0, **headers: str) -> Frame:
        """The next frame ``command`` with these headers, passing over any others."""
        wanted = _header_kwargs(headers)
        deadline = time.monotonic() + timeout
        while True:
            item = self.next_item(max(deadline - time.monotonic(), 0.0))
            if item is None:
                raise AssertionError(f"no {command}, the client ended; {self.describe()}")
            if (
                isinstance(item, Frame)
                and item.command == command
                and all(item.headers.get(name) == value for name, value in wanted)
            ):
                return item

    def expect_heartbeat(self, timeout: float = 2.0) -> None:
        item = self.next_item(timeout)
        if item is not HEARTBEAT:
            raise AssertionError(f"expected a heart-beat, got {item!r}; {self.describe()}")

    @property
    def client_ended(self) -> bool:
        """Whether the client closed its side (EOF), or the reader stopped on an error."""
        with self._condition:
            return self._eof

    def wait_until(self, ready: Callable[[], object], what: str, timeout: float = 2.0) -> None:
        """Wait until ``ready()`` is true; it is asked again whenever the client sent
        something or ended."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while not ready():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no {what} within {timeout:g} s; {self.describe()}")
                self._condition.wait(remaining)

    def wait_closed(self, timeout: float = 2.0) -> bool:
        """Whether the client ended its side (EOF or error) within ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while not (self._eof or self._reader_gone()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._condition.wait(remaining)
            return True

    @property
    def wire_received(self) -> int:
        """How many bytes were read from the client (after TLS, before WebSocket decoding),
        the handshakes not counted."""
        with self._condition:
            return self._wire_received

    def wait_wire_beyond(self, count: int, timeout: float = 2.0) -> int:
        """Wait until more than ``count`` bytes were read (see ``wire_received``): proof that
        the client started a write, even while a WebSocket frame is still incomplete."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while self._wire_received <= count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"the client wrote nothing more within {timeout:g} s; {self.describe()}"
                    )
                self._condition.wait(remaining)
            return self._wire_received

    def expect_pong(self, timeout: float = 2.0) -> bytes:
        deadline = time.monotonic() + timeout
        with self._condition:
            while not self.pongs:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no pong within {timeout:g} s; {self.describe()}")
                self._condition.wait(remaining)
            return self.pongs.pop(0)

    def _reader_gone(self) -> bool:
        return not self._reader.is_alive()

    # -- what the peer sends ---------------------------------------------------------------

    def send_raw(
        self,
        data: bytes,
        *,
        binary: bool | None = None,
        split_at: Sequence[int] = (),
        fragmented: bool = False,
    ) -> None:
        """Write ``data`` as is: over WebSocket as one message (text when it is UTF-8, unless
        ``binary``). ``split_at`` (offsets into ``data``) cuts it into several messages (or
        several TCP writes), or, with ``fragmented``, into the frames of one fragmented
        message."""
        if not self._ready.wait(_SOCKET_TIMEOUT):
            raise AssertionError(f"handshake not done; {self.describe()}")
        cuts = [0, *split_at, len(data)]
        pieces = [data[a:b] for a, b in itertools.pairwise(cuts)]
        if not self._websocket:
            for piece in pieces:
                self._channel.sendall(piece)
            return
        is_binary = binary if binary is not None else not _is_utf8(data)
        opcode = _BINARY if is_binary else _TEXT
        if fragmented:
            wire = b"".join(
                _ws_frame(opcode if i == 0 else _CONTINUATION, piece, fin=i == len(pieces) - 1)
                for i, piece in enumerate(pieces)
            )
            self._channel.sendall(wire)
            return
        for piece in pieces:
            self._channel.sendall(_ws_frame(opcode, piece))

    def send_frame(
        self, command: str, headers: HeaderInput | None = None, body: bytes | str = b""
    ) -> None:
        self.send_raw(frame_bytes(command, headers, body))

    def connected(self, version: str = "1.2", heartbeat: str = "0,0", **headers: str) -> None:
        pairs = [("version", version), ("heart-beat", heartbeat), *_header_kwargs(headers)]
        self.send_frame("CONNECTED", pairs)

    def answer_connect(self, version: str = "1.2", heartbeat: str = "0,0", **headers: str) -> Frame:
        """Expect CONNECT and answer CONNECTED; the CONNECT frame."""
        connect = self.expect("CONNECT")
        self.connected(version, heartbeat, **headers)
        return connect

    def receipt(self, receipt_id: str) -> None:
        self.send_frame("RECEIPT", [("receipt-id", receipt_id)])

    def error(self, message: str, *, receipt_id: str | None = None, body: str = "") -> None:
        pairs = [("message", message)]
        if receipt_id is not None:
            pairs.append(("receipt-id", receipt_id))
        self.send_frame("ERROR", pairs, body)

    def message_bytes(
        self,
        destination: str,
        subscription: str,
        body: bytes | str,
        *,
        ack: str | None = None,
        headers: HeaderInput | None = None,
    ) -> bytes:
        """A MESSAGE with the next message-id of this connection, as bytes (to join with
        other frames into one write)."""
        return message_bytes(
            destination,
            subscription,
            body,
            message_id=f"m-{self.number}-{next(self._message_ids)}",
            ack=ack,
            headers=headers,
        )

    def message(
        self,
        destination: str,
        subscription: str,
        body: bytes | str,
        *,
        ack: str | None = None,
        headers: HeaderInput | None = None,
    ) -> None:
        self.send_raw(self.message_bytes(destination, subscription, body, ack=ack, headers=headers))

    def heartbeat(self) -> None:
        self.send_raw(b"\n")

    def ping(self, payload: bytes = b"") -> None:
        self._require_websocket()
        self._channel.sendall(_ws_frame(_PING, payload))

    def ws_close(self, code: int = 1000, reason: str = "") -> None:
        """A WebSocket close frame (the TCP connection stays until ``close()``)."""
        self._require_websocket()
        self._channel.sendall(_ws_frame(_CLOSE, code.to_bytes(2, "big") + reason.encode()))

    def _require_websocket(self) -> None:
        if not self._websocket:
            raise AssertionError(f"{self!r} is not a WebSocket connection")

    # -- how the connection ends -----------------------------------------------------------

    def end_writing(self) -> None:
        """A FIN to the client (a TCP half-close): it reads the end, and its bytes are
        still read."""
        with contextlib.suppress(OSError):
            self._channel.sock.shutdown(socket.SHUT_WR)

    def stop_reading(self) -> None:
        """Read nothing more: once the small receive buffer (``ScriptedPeer(receive_buffer=)``)
        and the client's send buffer are full, the client's writes block. The reader may
        take one more chunk that was already on its way."""
        with self._condition:
            self._paused = True

    def resume_reading(self) -> None:
        with self._condition:
            self._paused = False
            self._condition.notify_all()

    def close(self) -> None:
        """A clean end: TLS close_notify, then a TCP FIN (both directions)."""
        self._channel.close_notify()
        self._teardown(socket.SHUT_RDWR, linger_zero=False)

    def reset(self) -> None:
        """An abrupt end: a TCP RST (SO_LINGER 0), no FIN."""
        self._teardown(socket.SHUT_RD, linger_zero=True)

    def _teardown(self, how: int, *, linger_zero: bool) -> None:
        with self._condition:
            if self._torn_down:
                return
            self._torn_down = True
            self._condition.notify_all()  # a paused reader wakes and ends
        sock = self._channel.sock
        if linger_zero:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # The shutdown wakes the reader (SHUT_RD sends nothing, so a reset stays a reset);
        # the descriptor is closed only after it has left recv().
        with contextlib.suppress(OSError):
            sock.shutdown(how)
        self._reader.join(_JOIN_TIMEOUT)
        sock.close()
        with self._condition:
            self._condition.notify_all()

    @property
    def reader_alive(self) -> bool:
        return self._reader.is_alive()

    # -- the reader thread -----------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._channel.sock.settimeout(_SOCKET_TIMEOUT)
            self._channel.handshake()
            leftover = self._ws_handshake() if self._websocket else b""
            self._ready.set()
            if leftover:
                self._received(leftover)
            while True:
                with self._condition:
                    while self._paused and not self._torn_down:
                        self._condition.wait()  # resume_reading() or a teardown notifies
                    if self._torn_down:
                        break
                try:
                    data = self._channel.recv()
                except TimeoutError:
                    continue
                if not data:
                    if self._torn_down:
                        break  # woken by close() or reset(), which end the connection
                    # A client that ends its side gets the end of ours, as from a broker
                    # (the client waits for it after DISCONNECT).
                    self._channel.close_notify()
                    with contextlib.suppress(OSError):
                        self._channel.sock.shutdown(socket.SHUT_WR)
                    break
                self._received(data)
        except (OSError, ssl.SSLError, ConnectionError, ValueError) as error:
            if not self._torn_down:
                self.failure = error
        finally:
            self._ready.set()
            with self._condition:
                self._eof = True
                self._condition.notify_all()

    def _received(self, data: bytes) -> None:
        with self._condition:
            self._wire_received += len(data)
            self._condition.notify_all()
        if self._websocket:
            self._ws_received(data)
        else:
            self._stomp_received(data)

    def _stomp_received(self, data: bytes) -> None:
        with self._condition:
            self._stream += data
            new: list[Frame | Heartbeat] = []
            if self.parse_error is None:
                try:
                    new = self._parser.feed(data)
                except ProtocolError as error:
                    self.parse_error = error
                self._items += new
            self._condition.notify_all()
        for item in new:
            if self.answer_disconnect and isinstance(item, Frame) and item.command == "DISCONNECT":
                receipt_id = item.headers.get("receipt")
                if receipt_id is not None:
                    self.receipt(receipt_id)

    def _ws_handshake(self) -> bytes:
        request = bytearray()
        while b"\r\n\r\n" not in request:
            data = self._channel.recv()
            if not data:
                raise ConnectionError("the client closed during the WebSocket handshake")
            request += data
        head, _, rest = bytes(request).partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.request_headers.setdefault(name.strip().lower(), value.strip())
        if self._handshake_response is not None:
            self._channel.sendall(self._handshake_response)
            raise ConnectionError("answered the WebSocket handshake as the test asked")
        key = self.request_headers.get("sec-websocket-key", "")
        if (
            not lines[0].startswith("GET ")
            or self.request_headers.get("upgrade", "").lower() != "websocket"
            or len(base64.b64decode(key.encode(), validate=True)) != 16
        ):
            self._channel.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            raise ValueError(f"not a WebSocket upgrade: {head!r}")
        accept = base64.b64encode(hashlib.sha1(key.encode() + _WS_GUID).digest()).decode()
        response = [
            "HTTP/1.1 101 Switching Protocols",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Accept: {accept}",
        ]
        if self._subprotocol is not None:
            response.append(f"Sec-WebSocket-Protocol: {self._subprotocol}")
        self._channel.sendall(("\r\n".join(response) + "\r\n\r\n").encode())
        return rest

    def _ws_received(self, data: bytes) -> None:
        buf = self._ws_buffer
        buf += data
        while len(buf) >= 2:
            first, second = buf[0], buf[1]
            size, pos = second & 0x7F, 2
            if size == 126:
                if len(buf) < 4:
                    return
                size, pos = int.from_bytes(buf[2:4], "big"), 4
            elif size == 127:
                if len(buf) < 10:
                    return
                size, pos = int.from_bytes(buf[2:10], "big"), 10
            masked = bool(second & 0x80)
            if len(buf) < pos + (4 if masked else 0) + size:
                return
            if masked:
                mask = bytes(buf[pos : pos + 4])
                pos += 4
                payload = _unmask(bytes(buf[pos : pos + size]), mask)
            else:
                # RFC 6455 5.1: a client must mask; recorded, and the test sees it.
                self.failure = ValueError("the client sent an unmasked WebSocket frame")
                payload = bytes(buf[pos : pos + size])
            del buf[: pos + size]
            self._ws_frame_received(first & 0x0F, payload)

    def _ws_frame_received(self, opcode: int, payload: bytes) -> None:
        with self._condition:
            self.ws_messages.append((opcode, payload))
            if opcode == _PONG:
                self.pongs.append(payload)
            elif opcode == _CLOSE:
                self.close_frame = payload
            self._condition.notify_all()
        if opcode in (_CONTINUATION, _TEXT, _BINARY):
            self._stomp_received(payload)
        elif opcode == _PING:
            self._channel.sendall(_ws_frame(_PONG, payload))
        elif opcode == _CLOSE:
            with contextlib.suppress(OSError):
                self._channel.sendall(_ws_frame(_CLOSE, payload[:2]))


class ScriptedPeer:
    """Listens on 127.0.0.1 (a free port) for the scripted connections of one test."""

    def __init__(
        self,
        transport: TransportName = "tcp",
        *,
        receive_buffer: int | None = None,
        subprotocol: str | None = "v12.stomp",
        handshake_response: bytes | None = None,
        answer_disconnect: bool = True,
        on_accept: Callable[[PeerConnection], None] | None = None,
    ) -> None:
        """``receive_buffer``: SO_RCVBUF (bytes) for accepted sockets, set before listen()
        so that it applies from the first segment; small, so that ``stop_reading()`` blocks
        the client soon. ``subprotocol``: the WebSocket subprotocol chosen (None: none).
        ``handshake_response``: bytes sent instead of a WebSocket handshake answer (an
        attribute: set it between connections to script a reconnect's handshake).
        ``answer_disconnect``: answer a DISCONNECT's receipt at once, as brokers do, so
        that tests end quickly; False leaves it to the test. ``on_accept(connection)``:
        called on the acceptor thread for each scripted connection, for peers that serve
        every connection alike (tests/fakes.py) instead of the test accepting each."""
        self._answer_disconnect = answer_disconnect
        self._on_accept = on_accept
        self.transport = transport
        self._subprotocol = subprotocol
        self.handshake_response = handshake_response
        self._tls_server: ssl.SSLContext | None = None
        if transport in ("tls", "wss"):
            certificates = _certificates()
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(certificates.server.cert, certificates.server.key)
            self._tls_server = context
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer is not None:
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port: int = self._listener.getsockname()[1]
        self._accepted: queue.Queue[PeerConnection] = queue.Queue()
        self.connections: list[PeerConnection] = []
        self._lock = threading.Lock()
        # Connections counted as they come, also those reset at once (reset_on_accept: an
        # attribute, set it to make every further connection fail without a script).
        self._attempt_condition = threading.Condition()
        self.attempts = 0
        self.reset_on_accept = False
        self._refused = False
        self._acceptor = threading.Thread(
            target=self._accept_loop, name=f"peer-accept-{self.port}", daemon=True
        )
        self._acceptor.start()

    @property
    def url(self) -> str:
        scheme = {"tcp": "stomp", "tls": "stomp+ssl", "ws": "ws", "wss": "wss"}[self.transport]
        path = "/ws" if self.transport in ("ws", "wss") else ""
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def ssl_context_for_client(self) -> ssl.SSLContext | None:
        """A context that trusts the peer's certificate (None without TLS)."""
        if self._tls_server is None:
            return None
        return ssl.create_default_context(cafile=str(_certificates().ca))

    def accept(self, timeout: float = 2.0) -> PeerConnection:
        """The next connection the client made (in order), waiting at most ``timeout``."""
        try:
            return self._accepted.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(
                f"no connection to {self.url} within {timeout:g} s ({len(self.connections)} so far)"
            ) from None

    @property
    def accepted_count(self) -> int:
        with self._lock:
            return len(self.connections)

    def refuse(self) -> None:
        """Stop listening: connections from now on are refused (the port is closed)."""
        with self._lock:
            if self._refused:
                return
            self._refused = True
        # shutdown() wakes the accept() blocked on the acceptor thread; then the port closes.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._acceptor.join(_JOIN_TIMEOUT)
        self._listener.close()

    def wait_attempts(self, count: int, timeout: float) -> bool:
        """Whether ``count`` connections (scripted or reset at once) came within
        ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._attempt_condition:
            while self.attempts < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._attempt_condition.wait(remaining)
            return True

    def _accept_loop(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            with self._attempt_condition:
                self.attempts += 1
                self._attempt_condition.notify_all()
            if self.reset_on_accept:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()
                continue
            connection = PeerConnection(
                sock,
                self.transport,
                self._tls_server,
                self._subprotocol,
                self.handshake_response,
                self._answer_disconnect,
            )
            with self._lock:
                self.connections.append(connection)
            self._accepted.put(connection)
            if self._on_accept is not None:
                self._on_accept(connection)

    def describe(self) -> str:
        with self._lock:
            connections = list(self.connections)
        return "; ".join(c.describe() for c in connections) or f"no connection to {self.url}"

    def close(self) -> None:
        self.refuse()
        with self._lock:
            connections = list(self.connections)
        for connection in connections:
            connection.close()

    def __enter__(self) -> ScriptedPeer:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
