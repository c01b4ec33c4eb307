"""The compat connection classes, one per STOMP version as in stomp.py 9.

Each offers only its own version, as stomp.py does, and takes ``ack``/``nack`` arguments in
that version's shape: 1.0 ``ack(message_id)``, 1.1 ``ack(message_id, subscription)``, 1.2
``ack(ack_id)`` (the MESSAGE's ``ack`` header).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .connection import BaseConnection
from .headers import merge
from .hosts import HostAndPort

__all__ = ["Connection", "Connection10", "Connection11", "Connection12", "WSConnection"]


class Connection10(BaseConnection):
    """A STOMP 1.0 connection over TCP (no heart-beats, no NACK in 1.0)."""

    version = "1.0"

    def __init__(
        self,
        host_and_ports: Sequence[HostAndPort | str] | None = None,
        prefer_localhost: bool = True,
        try_loopback_connect: bool = True,
        reconnect_sleep_initial: float = 0.1,
        reconnect_sleep_increase: float = 0.5,
        reconnect_sleep_jitter: float = 0.1,
        reconnect_sleep_max: float = 60.0,
        reconnect_attempts_max: int = 3,
        timeout: float | None = None,
        keepalive: Any = None,
        auto_decode: bool = True,
        encoding: str = "utf-8",
        auto_content_length: bool = True,
        bind_host_port: Any = None,
        *,
        auto_reconnect: bool = False,
        disconnect_timeout: float = 5.0,
    ) -> None:
        super().__init__(
            host_and_ports,
            prefer_localhost,
            try_loopback_connect,
            reconnect_sleep_initial,
            reconnect_sleep_increase,
            reconnect_sleep_jitter,
            reconnect_sleep_max,
            reconnect_attempts_max,
            timeout,
            (0, 0),
            keepalive,
            None,
            auto_decode,
            encoding,
            auto_content_length,
            1.5,
            bind_host_port,
            auto_reconnect=auto_reconnect,
            disconnect_timeout=disconnect_timeout,
        )

    def ack(self, id: str, transaction: str | None = None, receipt: str | None = None) -> None:
        """ACK the message whose ``message-id`` is ``id``, as stomp.py's 1.0 ``ack``."""
        self._acknowledge(True, {"message-id": id}, transaction, receipt)

    def unsubscribe(
        self,
        destination: str | None = None,
        id: str | None = None,
        headers: Mapping[str, Any] | None = None,
        **keyword_headers: Any,
    ) -> None:
        """Unsubscribe by ``id``, or by ``destination`` (1.0 allows either)."""
        if id is None and destination is None:
            raise ValueError("unsubscribe needs an id or a destination")
        self._unsubscribe(id, destination, merge(headers, keyword_headers))


class Connection11(BaseConnection):
    """A STOMP 1.1 connection over TCP (``stomp.Connection`` is this one)."""

    version = "1.1"

    def ack(
        self,
        id: str,
        subscription: str,
        transaction: str | None = None,
        receipt: str | None = None,
    ) -> None:
        """ACK message-id ``id`` of ``subscription``, as stomp.py's 1.1 ``ack``."""
        self._acknowledge(
            True, {"message-id": id, "subscription": subscription}, transaction, receipt
        )

    def nack(
        self,
        id: str,
        subscription: str,
        transaction: str | None = None,
        receipt: str | None = None,
        **keyword_headers: Any,
    ) -> None:
        """NACK message-id ``id`` of ``subscription``; extra keyword arguments go out as
        headers, as stomp.py's 1.1 ``nack``."""
        self._acknowledge(
            False,
            {"message-id": id, "subscription": subscription},
            transaction,
            receipt,
            merge(keyword_headers),
        )

    def unsubscribe(
        self, id: str, headers: Mapping[str, Any] | None = None, **keyword_headers: Any
    ) -> None:
        """UNSUBSCRIBE subscription ``id``; ``headers`` and keyword arguments go out as
        extra headers (RabbitMQ's ``durable``)."""
        self._unsubscribe(id, None, merge(headers, keyword_headers))


class Connection12(BaseConnection):
    """A STOMP 1.2 connection over TCP.

    stomp.py sends the host name it connects to as the ``host`` header when no ``vhost`` is
    given (which RabbitMQ refuses); like the rest of stompws, this sends ``host`` only when
    ``vhost`` is given.
    """

    version = "1.2"

    def ack(self, id: str, transaction: str | None = None, receipt: str | None = None) -> None:
        """ACK the message whose ``ack`` header is ``id``, as stomp.py's 1.2 ``ack``."""
        self._acknowledge(True, {"ack": id}, transaction, receipt)

    def nack(
        self,
        id: str,
        transaction: str | None = None,
        receipt: str | None = None,
        **keyword_headers: Any,
    ) -> None:
        """NACK the message whose ``ack`` header is ``id``; extra keyword arguments go out
        as headers, as stomp.py's 1.2 ``nack``."""
        self._acknowledge(False, {"ack": id}, transaction, receipt, merge(keyword_headers))

    def unsubscribe(
        self, id: str, headers: Mapping[str, Any] | None = None, **keyword_headers: Any
    ) -> None:
        """UNSUBSCRIBE subscription ``id``; ``headers`` and keyword arguments go out as
        extra headers (RabbitMQ's ``durable``)."""
        self._unsubscribe(id, None, merge(headers, keyword_headers))


class WSConnection(Connection12):
    """STOMP 1.2 over WebSocket: ``ws://host:port{ws_path}`` (wss:// for the hosts given
    to ``set_ssl``), with ``header`` as extra HTTP headers of the handshake.

    ``binary_mode`` and ``ws`` are accepted and have no effect: stompws sends each frame as
    a text message when it is UTF-8 and as a binary one otherwise.
    """

    _websocket = True

    def __init__(
        self,
        host_and_ports: Sequence[HostAndPort | str] | None = None,
        prefer_localhost: bool = True,
        try_loopback_connect: bool = True,
        reconnect_sleep_initial: float = 0.1,
        reconnect_sleep_increase: float = 0.5,
        reconnect_sleep_jitter: float = 0.1,
        reconnect_sleep_max: float = 60.0,
        reconnect_attempts_max: int = 3,
        timeout: float | None = None,
        heartbeats: tuple[int, int] = (0, 0),
        keepalive: Any = None,
        vhost: str | None = None,
        auto_decode: bool = True,
        encoding: str = "utf-8",
        auto_content_length: bool = True,
        heart_beat_receive_scale: float = 1.5,
        bind_host_port: Any = None,
        ws: Any = None,
        ws_path: str | None = None,
        header: Mapping[str, str] | None = None,
        binary_mode: bool = False,
        *,
        auto_reconnect: bool = False,
        disconnect_timeout: float = 5.0,
    ) -> None:
        super().__init__(
            host_and_ports,
            prefer_localhost,
            try_loopback_connect,
            reconnect_sleep_initial,
            reconnect_sleep_increase,
            reconnect_sleep_jitter,
            reconnect_sleep_max,
            reconnect_attempts_max,
            timeout,
            heartbeats,
            keepalive,
            vhost,
            auto_decode,
            encoding,
            auto_content_length,
            heart_beat_receive_scale,
            bind_host_port,
            ws_path=ws_path,
            header=header,
            auto_reconnect=auto_reconnect,
            disconnect_timeout=disconnect_timeout,
        )


Connection = Connection11
