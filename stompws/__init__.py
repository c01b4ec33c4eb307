"""stompws: a threaded STOMP 1.0/1.1/1.2 client for WebSocket and TCP.

The building blocks shipped so far are the sans-IO core: ``Frame`` and its encoder, the
streaming ``FrameParser`` and the ``ClientProtocol`` state machine, and the exception tree.
"""

from ._version import __version__
from .errors import (
    BrokerError,
    ConnectError,
    ConnectionClosed,
    ConnectTimeout,
    HeartbeatTimeout,
    NotConnected,
    ProtocolError,
    ReceiptTimeout,
    ReceiveTimeout,
    StompError,
    UsageError,
)
from .frame import Frame
from .parser import HEARTBEAT, FrameParser, Heartbeat
from .protocol import ClientProtocol, State

__all__ = [
    "HEARTBEAT",
    "BrokerError",
    "ClientProtocol",
    "ConnectError",
    "ConnectTimeout",
    "ConnectionClosed",
    "Frame",
    "FrameParser",
    "Heartbeat",
    "HeartbeatTimeout",
    "NotConnected",
    "ProtocolError",
    "ReceiptTimeout",
    "ReceiveTimeout",
    "State",
    "StompError",
    "UsageError",
    "__version__",
]
