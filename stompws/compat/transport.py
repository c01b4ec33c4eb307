"""``conn.transport``: the part of stomp.py's ``Transport`` that programs reach for.

stomp.py programs and its own examples read the connection's transport: whether it is
connected, where to (``current_host_and_port``), its listeners, and wait for the connection.
This is a view over the compat connection and its native client with those names and
meanings; stomp.py's I/O internals (``socket``, ``send``, ``receive``, ``override_threading``)
have no counterpart, since stompws owns its socket and threads (docs/guides/migration.md
says so).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ..lifecycle import ClientState
from .exception import ConnectFailedException

if TYPE_CHECKING:
    from .connection import BaseConnection
    from .hosts import HostAndPort

__all__ = ["Transport", "negotiated_heartbeats"]

_RUNNING = frozenset((ClientState.CONNECTING, ClientState.CONNECTED, ClientState.RECONNECTING))


def negotiated_heartbeats(asked: tuple[int, int], broker: str) -> tuple[int, int]:
    """stomp.py's reading of a CONNECTED ``heart-beat`` header (``broker``) against what was
    asked: (ms between our heart-beats, ms between the broker's), 0 when off."""
    try:
        broker_sends, broker_wants = (int(part) for part in broker.replace(" ", "").split(","))
    except ValueError:
        # Unreachable from a live connection: the core refused a malformed header with a
        # ProtocolError before any CONNECTED reached here; kept total for direct callers.
        return (0, 0)
    sending = max(asked[0], broker_wants) if asked[0] and broker_wants else 0
    receiving = max(asked[1], broker_sends) if asked[1] and broker_sends else 0
    return (sending, receiving)


class Transport:
    """What a stomp.py program sees as ``conn.transport``."""

    def __init__(self, connection: BaseConnection) -> None:
        self._connection = connection

    def is_connected(self) -> bool:
        return self._connection.is_connected()

    @property
    def connected(self) -> bool:
        return self._connection.is_connected()

    @property
    def running(self) -> bool:
        """True while connecting, connected or reconnecting, as stomp.py's receiver loop."""
        client = self._connection.client
        return client is not None and client.state in _RUNNING

    @property
    def current_host_and_port(self) -> HostAndPort | None:
        """The ``(host, port)`` connected to, None when not connected."""
        client = self._connection.client
        if client is None or not client.is_connected:
            return None
        return self._connection._current(client)

    @property
    def vhost(self) -> str | None:
        return self._connection.vhost

    @property
    def bind_host_port(self) -> tuple[str, int] | None:
        return self._connection.bind_host_port

    @property
    def listeners(self) -> dict[str, Any]:
        """The listeners by name (a copy: change them with ``set_listener``)."""
        return dict(self._connection._listeners)

    def set_listener(self, name: str, listener: Any) -> None:
        self._connection.set_listener(name, listener)

    def remove_listener(self, name: str) -> None:
        self._connection.remove_listener(name)

    def get_listener(self, name: str) -> Any:
        return self._connection.get_listener(name)

    def set_ssl(self, *args: Any, **kwargs: Any) -> None:
        self._connection.set_ssl(*args, **kwargs)

    def get_ssl(self, host_and_port: HostAndPort | None = None) -> dict[str, Any] | None:
        return self._connection.get_ssl(host_and_port)

    def wait_for_connection(self, timeout: float | None = None) -> None:
        """Return once connected; ``ConnectFailedException`` when not connected within
        ``timeout`` seconds (10 when None: stompws never waits for ever)."""
        deadline = time.monotonic() + (10.0 if timeout is None else timeout)
        client = self._connection.client
        if client is None or not client._lifecycle.wait_for(ClientState.CONNECTED, deadline):
            raise ConnectFailedException("not connected")
