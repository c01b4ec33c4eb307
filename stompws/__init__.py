"""stompws: a threaded STOMP 1.0/1.1/1.2 client for WebSocket and TCP.

``Client`` is the threaded client; ``Frame``, ``FrameParser`` and ``ClientProtocol`` are the
sans-IO building blocks under it; every error is a ``StompError`` (see ``stompws.errors``).
"""

import logging as _logging

from ._version import __version__
from .client import Client, ClientState
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
    ReconnectFailed,
    StompError,
    UsageError,
    WriteTimeout,
)
from .frame import Frame
from .handles import Message, Receipt, Subscription, Transaction
from .listener import Listener, PrintingListener, StatsListener, WaitingListener
from .parser import HEARTBEAT, FrameParser, Heartbeat
from .protocol import ClientProtocol, State
from .reconnect import Reconnect

__all__ = [
    "HEARTBEAT",
    "BrokerError",
    "Client",
    "ClientProtocol",
    "ClientState",
    "ConnectError",
    "ConnectTimeout",
    "ConnectionClosed",
    "Frame",
    "FrameParser",
    "Heartbeat",
    "HeartbeatTimeout",
    "Listener",
    "Message",
    "NotConnected",
    "PrintingListener",
    "ProtocolError",
    "Receipt",
    "ReceiptTimeout",
    "ReceiveTimeout",
    "Reconnect",
    "ReconnectFailed",
    "State",
    "StatsListener",
    "StompError",
    "Subscription",
    "Transaction",
    "UsageError",
    "WaitingListener",
    "WriteTimeout",
    "__version__",
]

# A library leaves logging output to the application: nothing is printed unless it
# configures logging.
_logging.getLogger("stompws").addHandler(_logging.NullHandler())
