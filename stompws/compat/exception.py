"""The exceptions of stomp.py 9, each also the stompws error it stands for.

``except stompws.compat.NotConnectedException`` (the stomp.py spelling) and ``except
stompws.NotConnected`` (the native one) both catch what a compat connection raises, so code
can move to the native names one ``except`` at a time.
"""

from __future__ import annotations

from ..errors import ConnectError, ConnectionClosed, NotConnected, StompError

__all__ = [
    "ConnectFailedException",
    "ConnectionClosedException",
    "InterruptedException",
    "NotConnectedException",
    "StompException",
]


class StompException(StompError):
    """The root of the stomp.py-named exceptions (and a ``stompws.StompError``)."""


class ConnectionClosedException(StompException, ConnectionClosed):
    """The connection ended under an operation (stomp.py raises it only in its reader)."""


class NotConnectedException(StompException, NotConnected):
    """The operation needs a live connection and there is none."""


class ConnectFailedException(StompException, ConnectError):
    """No connection could be made within the connect attempts, or the broker refused the
    CONNECT (``__cause__`` holds the native error, e.g. a ``stompws.BrokerError``)."""


class InterruptedException(StompException):
    """Kept for imports that name it; stompws never raises it (reads are not interrupted)."""
