"""STOMP over WebSocket (ws://, wss://) with the ``websocket-client`` package.

We open the TCP (and TLS) socket ourselves, so that connect errors and certificate checks
read the same as over plain TCP, and hand it to websocket-client for the handshake.

Choices, each measured or required by a broker:

* ``skip_utf8_validation=True``: websocket-client's own check of every text message costs
  about 50 µs in pure Python, and RabbitMQ sends non-UTF-8 bodies inside text messages
  anyway. The STOMP parser checks what STOMP requires (a UTF-8 header block).
* A frame that is valid UTF-8 goes out as a text message (ActiveMQ ignores binary ones),
  anything else as binary (RabbitMQ closes with 1007 on a text message that is not UTF-8).
* One whole frame per message, each heart-beat its own message: ActiveMQ Classic cannot
  reassemble frames split across messages.
* ``enable_multithread=True``: websocket-client answers pings from inside ``recv`` on the
  reader thread; its own lock keeps those pongs from interleaving with our frames.
"""

from __future__ import annotations

import socket
import ssl

import websocket

from .errors import ConnectError, ConnectionClosed, ConnectTimeout
from .transport import (
    Endpoint,
    HandshakeGuard,
    connect_socket,
    make_blocking,
    readable_now,
    shutdown,
)

__all__ = ["WebSocketTransport", "subprotocols_for"]

_TEXT = websocket.ABNF.OPCODE_TEXT
_BINARY = websocket.ABNF.OPCODE_BINARY
_CLOSE = websocket.ABNF.OPCODE_CLOSE


def subprotocols_for(versions: tuple[str, ...]) -> list[str]:
    """v12.stomp, v11.stomp, v10.stomp for the versions offered, highest first."""
    return [f"v{version.replace('.', '')}.stomp" for version in sorted(versions, reverse=True)]


class WebSocketTransport:
    def __init__(self, endpoint: Endpoint, ws: websocket.WebSocket) -> None:
        self.endpoint = endpoint
        self._ws = ws
        self._sock: socket.socket | None = ws.sock
        self.subprotocol: str | None = ws.subprotocol
        self._aborted = False

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
        sock = connect_socket(endpoint, guard, ssl_context)
        offered = subprotocols_for(versions)
        try:
            ws = websocket.create_connection(
                endpoint.url,
                timeout=guard.remaining(),
                socket=sock,
                subprotocols=offered,
                header=[f"{name}: {value}" for name, value in (ws_headers or {}).items()],
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

    def send(self, data: bytes) -> None:
        opcode = _TEXT if data.isascii() or _is_utf8(data) else _BINARY
        try:
            self._ws.send(data, opcode)
        except (websocket.WebSocketException, OSError) as error:
            raise ConnectionClosed(f"write to {self.endpoint.url} failed: {error}") from error

    def recv(self) -> bytes:
        try:
            opcode, data = self._ws.recv_data()
        except (websocket.WebSocketException, OSError) as error:
            if self._aborted:
                raise ConnectionClosed("connection aborted") from None
            raise ConnectionClosed(f"connection to {self.endpoint.url} lost: {error}") from error
        if opcode == _CLOSE:
            code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
            reason = data[2:].decode("utf-8", "replace") or f"{self.endpoint.url} closed"
            raise ConnectionClosed(reason, code=code)
        return bytes(data)

    def readable_now(self) -> bool:
        return readable_now(self._sock)

    def close_gracefully(self) -> None:
        try:
            self._ws.send_close(websocket.STATUS_NORMAL)
        except (websocket.WebSocketException, OSError):
            self.abort()

    def abort(self) -> None:
        self._aborted = True
        shutdown(self._sock)

    def close(self) -> None:
        self._ws.shutdown()  # type: ignore[no-untyped-call]


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
