"""Every failure stompws reports is one of these exceptions.

The tree is grouped by what the caller can do about the failure::

    StompError
    ├── UsageError (also ValueError)      the caller asked for something STOMP cannot express
    │                                      or that is not allowed now: NACK on 1.0, a CR in a
    │                                      1.0 header, a duplicate subscription id
    ├── NotConnected                      the operation needs a live connection and there is none
    ├── ConnectError                      no connection could be made: refused, TLS, handshake,
    │   │                                  a subprotocol or version that was not offered
    │   └── ConnectTimeout (TimeoutError) the connection was not established in time
    ├── BrokerError                       the broker answered ERROR (``.frame`` holds it)
    ├── ProtocolError                     the peer broke STOMP (a malformed or oversized frame)
    │                                      or WebSocket framing
    ├── ConnectionClosed                  an established connection ended (``.code``, ``.reason``)
    │   ├── HeartbeatTimeout (TimeoutError) the broker went silent for too long
    │   ├── WriteTimeout (TimeoutError)   a write did not finish within write_timeout: the
    │   │                                  broker stopped reading (the connection is ended)
    │   └── ReconnectFailed               ... and the reconnect policy gave up (``__cause__``:
    │                                      the last attempt's error)
    ├── ReceiptTimeout (TimeoutError)     no RECEIPT arrived in time
    └── ReceiveTimeout (TimeoutError)     no message arrived in time (``Subscription.get``)

The timeouts are builtin ``TimeoutError`` too, so ``except TimeoutError`` catches each of
them. ``ProtocolError`` is the only exception the frame parser raises.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .frame import Frame

__all__ = [
    "BrokerError",
    "ConnectError",
    "ConnectTimeout",
    "ConnectionClosed",
    "HeartbeatTimeout",
    "NotConnected",
    "ProtocolError",
    "ReceiptTimeout",
    "ReceiveTimeout",
    "ReconnectFailed",
    "StompError",
    "UsageError",
    "WriteTimeout",
]


class StompError(Exception):
    """The root of every exception stompws raises on purpose."""


class UsageError(StompError, ValueError):
    """The caller asked for something STOMP cannot express or that is not allowed now."""


class NotConnected(StompError):
    """The operation needs a live connection and there is none."""


class ConnectError(StompError):
    """No connection could be established."""


class ConnectTimeout(ConnectError, TimeoutError):
    """The connection (TCP, TLS, WebSocket handshake and CONNECTED) took too long."""


class BrokerError(StompError):
    """The broker answered with an ERROR frame, which ``.frame`` holds."""

    def __init__(self, frame: Frame) -> None:
        self.frame = frame
        message = frame.headers.get("message", "")
        detail = frame.body.decode("utf-8", "replace").strip()
        text = f"broker sent ERROR: {message}" if message else "broker sent ERROR"
        if detail and detail != message:
            text = f"{text} ({detail[:500]})"
        super().__init__(text)


class ProtocolError(StompError):
    """The peer sent bytes that are not valid STOMP, or more than a configured limit.

    ``offset`` is where in the received stream the problem was found, when known.
    ``frames`` holds what the parser completed before the problem in the same input, so
    that nothing received intact is lost.
    """

    def __init__(self, message: str, *, offset: int | None = None) -> None:
        self.offset = offset
        self.frames: list[Any] = []
        super().__init__(
            message if offset is None else f"{message} (at byte {offset} of the stream)"
        )


class ConnectionClosed(StompError):
    """An established connection ended; ``code`` and ``reason`` come from a WebSocket close."""

    def __init__(self, reason: str = "connection closed", *, code: int | None = None) -> None:
        self.code = code
        self.reason = reason
        super().__init__(reason if code is None else f"{reason} (close code {code})")


class HeartbeatTimeout(ConnectionClosed, TimeoutError):
    """The broker sent nothing, not even a heart-beat, for longer than the agreed tolerance."""


class WriteTimeout(ConnectionClosed, TimeoutError):
    """A write did not finish in time (``write_timeout``): the broker stopped reading.

    Part of the frame may have gone out, so the connection cannot go on: it is ended.
    """


class ReconnectFailed(ConnectionClosed):
    """The connection was lost and the reconnect policy ran out of attempts."""


class ReceiptTimeout(StompError, TimeoutError):
    """The RECEIPT for a frame did not arrive in time."""


class ReceiveTimeout(StompError, TimeoutError):
    """No message arrived in time."""
