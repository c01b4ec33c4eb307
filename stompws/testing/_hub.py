"""What every part of the embedded broker shares: settings, fault switches, the lock, and the
registry of live connections.

One lock (a ``Condition``, so that tests can wait for the set of connections to change)
guards the destinations, every session's subscriptions and transactions, and the registry.
It is held while a received frame is handled, which is short and never touches a socket:
handling a frame only appends to connections' outboxes, and each connection's writer thread
does the sending without the lock.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._router import Router

if TYPE_CHECKING:
    from ._connection import Connection

__all__ = ["ConnectionInfo", "Faults", "Hub", "Settings"]


@dataclass(frozen=True)
class Settings:
    """The broker's configuration, fixed at construction (see ``Broker`` for each knob)."""

    versions: tuple[str, ...]
    users: Mapping[str, str] | None
    heartbeats: tuple[int, int] | None
    heartbeat_tolerance: float
    max_frame_size: int
    close_timeout: float
    server: str
    allowed_origins: frozenset[str] = frozenset()
    connect_timeout: float = 10.0
    max_connections: int = 256
    max_outbox_bytes: int = 64 * 1024 * 1024


@dataclass
class Faults:
    """Switches the fault hooks flip; writer threads read them before each write.

    Plain attributes on purpose: each is one read or one store, and a write that races with
    a flip may go either way, which a fault hook cannot promise better anyway.
    """

    heartbeats_stopped: bool = False
    silent: bool = False
    delay: float = 0.0
    refusing: bool = False

    def reset(self) -> None:
        self.heartbeats_stopped = False
        self.silent = False
        self.delay = 0.0
        self.refusing = False


@dataclass(frozen=True)
class ConnectionInfo:
    """A snapshot of one client connection, as ``Broker.connections`` lists it.

    ``session`` is the id sent in CONNECTED (what ``Client.session`` shows) and is None,
    like ``version`` and ``login``, until the client's CONNECT was accepted.
    """

    number: int
    transport: str  # "tcp" or "ws"
    peer: str
    session: str | None
    version: str | None
    login: str | None
    subprotocol: str | None


class Hub:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.faults = Faults()
        self.lock = threading.Condition()
        self.router = Router()
        self.stopping = False
        self._connections: dict[int, Connection] = {}
        self._warned_full = False
        self._known: list[Connection] = []  # every connection whose threads may still run
        self._numbers = itertools.count(1)
        self._sessions = itertools.count(1)

    def next_number(self) -> int:
        return next(self._numbers)

    def new_session_id(self) -> str:
        return f"session-{next(self._sessions)}"

    def track(self, connection: Connection) -> None:
        """Remember a new connection until its threads are over, so that stop() joins them."""
        with self.lock:
            self._known = [known for known in self._known if not known.finished()]
            self._known.append(connection)

    def known(self) -> list[Connection]:
        with self.lock:
            return list(self._known)

    def register(self, connection: Connection) -> str | None:
        """Add a connection; or say why it must be closed at once (stopping, or full)."""
        with self.lock:
            if self.stopping:
                return "the broker is stopping"
            if len(self._connections) >= self.settings.max_connections:
                return f"too many connections (the limit is {self.settings.max_connections})"
            self._connections[connection.number] = connection
            self.lock.notify_all()
            return None

    def full(self) -> bool:
        with self.lock:
            return len(self._connections) >= self.settings.max_connections

    def refusal_level(self) -> int:
        """WARNING for the first refusal at the cap, INFO for the rest until a slot frees:
        a flood of connections must not become a flood of warnings."""
        with self.lock:
            first = not self._warned_full
            self._warned_full = True
        return logging.WARNING if first else logging.INFO

    def unregister(self, connection: Connection) -> None:
        with self.lock:
            self._connections.pop(connection.number, None)
            self._warned_full = False
            self.lock.notify_all()

    def changed(self) -> None:
        """Wake waiters after a connection's state changed (lock held by the caller)."""
        self.lock.notify_all()

    def connections(self) -> list[Connection]:
        with self.lock:
            return list(self._connections.values())

    def wait(self, predicate: Callable[[list[Connection]], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.lock:
            while not predicate(list(self._connections.values())):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.lock.wait(remaining)
            return True
