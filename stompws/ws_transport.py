"""STOMP over WebSocket (ws://, wss://): the handshake by ``ws_handshake``, the framing by
``ws_framing``, the socket a ``sockets.Stream``.

We open the TCP (and TLS) socket ourselves, so that connect errors and certificate checks
read the same as over plain TCP, and do the opening handshake on it (bounded in size, no
redirects: see ``ws_handshake``). After it, this module reads and writes RFC 6455 frames on
the socket itself (why: see ``ws_framing``): it reads up to 256 KiB a call, hands the STOMP
parser the payloads found, answers pings, and answers and raises a close after the data
before it.

Threads: one lock serialises every write (our frames, and the pongs and close replies the
reader sends), and ``close`` takes it too, so that the socket is never closed under a write.
The reader never waits for that lock: a write may be blocked on a broker that is waiting for
us to read. A pong it cannot send at once goes out when the write in progress ends (the
writer sends it after releasing the lock); a close answer it cannot send is skipped, as the
socket goes down anyway.
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Final

from .endpoint import Endpoint
from .errors import ConnectError, ConnectionClosed, ProtocolError, StompError
from .proxy import proxy_for
from .sockets import HandshakeGuard, Stream, connect_socket
from .ws_framing import (
    CLOSE,
    PONG,
    STATUS_NORMAL,
    STATUS_PROTOCOL_ERROR,
    Close,
    FrameReader,
    FrameWriter,
    FramingError,
)
from .ws_handshake import check_headers, handshake

if TYPE_CHECKING:
    import ssl

__all__ = ["WebSocketTransport", "subprotocols_for"]

_READ_SIZE: Final = 256 * 1024


def subprotocols_for(versions: tuple[str, ...]) -> list[str]:
    """v12.stomp, v11.stomp, v10.stomp for the versions offered, highest first."""
    return [f"v{version.replace('.', '')}.stomp" for version in sorted(versions, reverse=True)]


class WebSocketTransport:
    """The ``transport.Transport`` for ws:// and wss://, on a socket after the handshake."""

    def __init__(
        self, endpoint: Endpoint, stream: Stream, subprotocol: str | None, early: bytes = b""
    ) -> None:
        self.endpoint = endpoint
        self.subprotocol = subprotocol
        self._stream = stream
        self._write_lock = threading.Lock()  # every write, and close (module docstring)
        self._writer = FrameWriter()  # used under _write_lock only
        self._reader = FrameReader()  # the reader thread's
        self._early = early  # bytes the server sent right after its handshake answer
        self._peer_close: ConnectionClosed | None = None  # a close seen, raised next recv
        self._close_sent = False
        self._pong_due: bytes | None = None  # a ping's payload still to answer
        self._on_eof = (
            f"connection to {endpoint.url} lost: the broker closed the TCP connection "
            "without a WebSocket close"
        )

    @classmethod
    def open(
        cls,
        endpoint: Endpoint,
        *,
        guard: HandshakeGuard,
        ssl_context: ssl.SSLContext | None,
        source_address: tuple[str, int] | None = None,
        ws_headers: dict[str, str] | None,
        versions: tuple[str, ...],
        write_timeout: float,
    ) -> WebSocketTransport:
        handshake_headers = check_headers(ws_headers)
        sock = connect_socket(endpoint, guard, ssl_context, proxy_for(endpoint), source_address)
        try:
            offered = subprotocols_for(versions)
            subprotocol, early = handshake(endpoint, sock, guard, handshake_headers, offered)
            stream = Stream(sock, write_timeout=write_timeout, where=endpoint.url)
        except StompError:
            # Already what the caller needs; ConnectTimeout is also an OSError (through
            # TimeoutError) and must not be rewrapped as a plain ConnectError below.
            sock.close()
            raise
        except OSError as error:
            sock.close()
            raise ConnectError(f"cannot set up the socket to {endpoint.url}: {error}") from error
        except BaseException:
            sock.close()
            raise
        return cls(endpoint, stream, subprotocol, early)

    # -- writing (any thread) ---------------------------------------------------------------

    def send(self, data: bytes, timeout: float | None = None) -> None:
        """One whole message (see ``transport.Transport.send``)."""
        with self._write_lock:
            wire = self._writer.message(data)
            self._write_locked(wire, timeout)
        self._answer_late_ping()

    def _answer_late_ping(self) -> None:
        # A ping that came while this write held the lock could not be answered by the
        # reader; with heart-beats off no other write may follow, so the writer answers it.
        # Checked after the lock is released: the reader sets the pong first and then tries
        # the lock, so one of the two sees the other.
        if self._pong_due is not None:
            with contextlib.suppress(ConnectionClosed):  # the reader reports a dead socket
                self._write_if_free(None)

    def _write_locked(self, wire: bytes, timeout: float | None = None) -> None:
        pong = self._pong_due
        if pong is not None:  # a ping the reader could not answer itself: now
            self._pong_due = None
            wire = self._writer.control(PONG, pong) + wire
        self._stream.send(wire, timeout)

    def _write_if_free(self, opcode: int | None, payload: bytes = b"") -> bool:
        """The reader's own writes: False at once when another thread is writing, as that
        write may be blocked on a broker that waits for us to read."""
        if not self._write_lock.acquire(blocking=False):
            return False
        try:
            self._write_locked(b"" if opcode is None else self._writer.control(opcode, payload))
        finally:
            self._write_lock.release()
        return True

    def close_gracefully(self) -> None:
        try:
            with self._write_lock:
                if not self._close_sent:
                    self._close_sent = True
                    self._write_locked(
                        self._writer.control(CLOSE, STATUS_NORMAL.to_bytes(2, "big"))
                    )
        except ConnectionClosed:
            self.abort()

    def _send_close_if_free(self, payload: bytes) -> None:
        """A close frame unless one went out already (RFC 6455 5.5.1: only one)."""
        # Not waiting for a writer: the socket goes down anyway.
        with contextlib.suppress(ConnectionClosed):
            if not self._close_sent and self._write_if_free(CLOSE, payload):
                self._close_sent = True

    # -- reading (the reader thread only) -----------------------------------------------------

    def recv(self) -> bytes:
        """The payload bytes of every data frame read so far, joined (at least one byte)."""
        while True:
            if self._peer_close is not None:
                raise self._peer_close
            if self._early:
                chunk, self._early = self._early, b""
            else:
                chunk = self._stream.recv(_READ_SIZE, self._on_eof)
            try:
                received = self._reader.receive_data(chunk)
            except FramingError as error:
                # The broker broke WebSocket: a ProtocolError (what the caller can do about
                # it differs from a lost link), after our close with status 1002.
                self._send_close_if_free(STATUS_PROTOCOL_ERROR.to_bytes(2, "big"))
                raise ProtocolError(
                    f"{self.endpoint.url} broke WebSocket framing: {error}"
                ) from None
            if received.pings:
                # Answered now, or in front of the next write; the latest one is enough
                # (RFC 6455 5.5.3).
                self._pong_due = received.pings[-1]
                self._write_if_free(None)
            if received.close is not None:
                self._peer_closed(received.close)
            if received.data:
                return received.data

    def _peer_closed(self, close: Close) -> None:
        reason = close.reason or f"{self.endpoint.url} closed"
        self._peer_close = ConnectionClosed(reason, code=close.code)
        # The broker may have gone already: its close is what we report either way.
        self._send_close_if_free(close.answer)

    def readable_now(self) -> bool:
        return self._stream.readable_now()

    def read_handled(self) -> None:
        self._stream.read_handled()

    def abort(self) -> None:
        self._stream.abort()

    def close(self) -> None:
        # Under the write lock: never close the socket while another thread writes to it
        # (a known crash with TLS).
        with self._write_lock:
            self._stream.close()
