"""Byte transports under a STOMP session: the ``Transport`` protocol the connection uses,
``open_transport`` to make one, and TCP here (WebSocket in ``ws_transport``; sockets, TLS
and the opening deadline in ``sockets``; URLs in ``endpoint``).

Under the client, ``sockets`` is the only module that uses ``socket``, ``ssl`` and
``select``; nothing under the client imports ``websocket`` (the handshake is ``ws_handshake``).

Threading contract, which the client relies on:

* exactly one thread (the connection's reader) calls ``recv`` and, at the end, ``close``;
* any thread may call ``send`` and ``close_gracefully``; the client serialises them;
* any thread may call ``abort``: a ``recv`` or ``send`` waiting on the peer wakes at once
  and raises ``ConnectionClosed``, and the reader then closes. The socket is shut down, not
  closed: closing a socket from a second thread while another is inside ``recv`` is a
  known crash with TLS.

Reads never time out (an idle, healthy connection must stay up; heart-beats judge
liveness); every write does, TLS included, so a peer that stops reading cannot block a
sender, or ``disconnect()``, for longer than ``write_timeout`` (how and why: ``sockets``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Protocol

from .endpoint import Endpoint, parse_url
from .errors import ConnectError, ConnectTimeout
from .sockets import HandshakeGuard, Stream, connect_socket
from .ws_transport import WebSocketTransport

if TYPE_CHECKING:
    import ssl  # only the type: sockets and TLS are in ``sockets``

__all__ = [
    "Endpoint",
    "HandshakeGuard",
    "TcpTransport",
    "Transport",
    "open_transport",
    "parse_url",
]

_READ_SIZE: Final = 256 * 1024


class Transport(Protocol):
    """What the client needs from a byte transport (see the module docstring)."""

    endpoint: Endpoint
    subprotocol: str | None

    def send(self, data: bytes, timeout: float | None = None) -> None:
        """Write ``data`` whole (one WebSocket message), or raise ``ConnectionClosed``.

        Bounded by ``write_timeout``, or by ``timeout`` when that is shorter (the caller
        passes what is left of its own deadline): past it, ``WriteTimeout``. After any
        failure part of ``data`` may have gone out, so the caller ends the connection.
        """
        ...

    def recv(self) -> bytes:
        """At least one byte, waiting as long as it takes; ``ConnectionClosed`` at the end."""
        ...

    def readable_now(self) -> bool:
        """Whether bytes came that the reader has not handed over yet (waiting unread, or
        read and not yet given to the session): the broker is alive."""
        ...

    def read_handled(self) -> None:
        """The reader's, once the bytes of its last ``recv`` are given to the session."""
        ...

    def close_gracefully(self) -> None:
        """Ask the peer to close (WebSocket close, TCP half-close); the reader sees the end."""
        ...

    def abort(self) -> None:
        """From any thread: wake ``recv`` and ``send`` now (module docstring)."""
        ...

    def close(self) -> None:
        """The reader's, at the end; no writer is inside ``send``."""
        ...


def open_transport(
    endpoint: Endpoint,
    *,
    guard: HandshakeGuard,
    ssl_context: ssl.SSLContext | None,
    ws_headers: dict[str, str] | None,
    versions: tuple[str, ...],
    write_timeout: float,
    source_address: tuple[str, int] | None = None,
) -> Transport:
    """Connect (TCP, TLS, WebSocket handshake) before ``guard``'s deadline."""
    try:
        if endpoint.websocket:
            return WebSocketTransport.open(
                endpoint,
                guard=guard,
                ssl_context=ssl_context,
                source_address=source_address,
                ws_headers=ws_headers,
                versions=versions,
                write_timeout=write_timeout,
            )
        return TcpTransport.open(
            endpoint,
            guard=guard,
            ssl_context=ssl_context,
            write_timeout=write_timeout,
            source_address=source_address,
        )
    except ConnectError as error:
        if guard.aborted:
            raise ConnectError(f"connecting to {endpoint.url} was aborted") from error
        if guard.fired and not isinstance(error, ConnectTimeout):
            raise ConnectTimeout(
                f"connecting to {endpoint.url} took longer than {guard.timeout:g} s ({error})"
            ) from error
        raise
    finally:
        guard.close()


class TcpTransport:
    """STOMP straight over a TCP (or TLS) socket: stomp:// and stomp+ssl://."""

    subprotocol: str | None = None

    def __init__(self, endpoint: Endpoint, stream: Stream) -> None:
        self.endpoint = endpoint
        self._stream = stream
        self._on_eof = f"{endpoint.url} closed the connection"

    @classmethod
    def open(
        cls,
        endpoint: Endpoint,
        *,
        guard: HandshakeGuard,
        ssl_context: ssl.SSLContext | None,
        write_timeout: float,
        source_address: tuple[str, int] | None = None,
    ) -> TcpTransport:
        sock = connect_socket(endpoint, guard, ssl_context, source_address=source_address)
        try:
            stream = Stream(sock, write_timeout=write_timeout, where=endpoint.url)
        except OSError as error:
            sock.close()
            raise ConnectError(f"cannot set up the socket to {endpoint.url}: {error}") from error
        return cls(endpoint, stream)

    def send(self, data: bytes, timeout: float | None = None) -> None:
        self._stream.send(data, timeout)

    def recv(self) -> bytes:
        return self._stream.recv(_READ_SIZE, self._on_eof)

    def readable_now(self) -> bool:
        return self._stream.readable_now()

    def read_handled(self) -> None:
        self._stream.read_handled()

    def close_gracefully(self) -> None:
        try:
            # Half-close: the broker sees our end and closes its side, which ends the
            # reader's recv with an orderly EOF.
            self._stream.shutdown_write()
        except OSError:
            self.abort()

    def abort(self) -> None:
        self._stream.abort()

    def close(self) -> None:
        self._stream.close()
