"""The client's life cycle: one state machine, its transitions in one table, under one lock.

Every change of the client's state is a ``Trigger`` fired at ``Lifecycle``: the table below
says, for the current state, which state follows; a trigger the table does not list for a
state is refused (``fire`` returns None and nothing changes). The lock is held only for the
look-up and the assignment, never while user code or I/O runs: the caller tells the
listeners after the transition, with no lock held.

Who fires what:

* the caller's thread: CONNECT (``connect()``), DISCONNECT and CLOSED (``disconnect()``),
  ATTEMPTS_FAILED (``connect()`` tried every URL);
* ``connect()``'s thread or the reconnect supervisor: OPENING and OPENED for each attempt;
* the connection's reader thread: ESTABLISHED (its CONNECTED arrived) and LOST / LOST_RETRY
  (it ended; LOST_RETRY when a reconnect policy applies);
* the supervisor: GAVE_UP.

The triggers that name a connection (ESTABLISHED, LOST, LOST_RETRY) count only for the
current one: a stale connection's report changes nothing. DISCONNECT is accepted in every
state but the last two, so ``disconnect()`` wins over a connect or reconnect in flight: the
attempt's OPENING / OPENED are refused afterwards, and an attempt already opened is the
current connection, which ``disconnect()`` ends itself.
"""

from __future__ import annotations

import enum
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from .connection import Connection
    from .transport import HandshakeGuard

__all__ = ["TRANSITIONS", "ClientState", "Lifecycle", "Trigger"]


class ClientState(enum.Enum):
    """A client's place in its life (``Client.state``); CLOSED is final."""

    NEW = "new"
    CONNECTING = "connecting"  # connect() is trying the URLs
    CONNECTED = "connected"  # the current connection has its CONNECTED
    RECONNECTING = "reconnecting"  # lost; the reconnect supervisor is trying again
    DISCONNECTING = "disconnecting"  # disconnect() is under way
    DISCONNECTED = "disconnected"  # lost, not reconnecting; connect() may be called again
    CLOSED = "closed"  # disconnect() finished: final


class Trigger(enum.Enum):
    CONNECT = "connect() called"
    OPENING = "an attempt starts its handshake"
    OPENED = "an attempt's transport is open and its CONNECT written"
    ESTABLISHED = "CONNECTED arrived on the current connection"
    ATTEMPTS_FAILED = "connect() tried every URL in vain"
    LOST = "the current connection ended"
    LOST_RETRY = "the current connection ended and a reconnect policy applies"
    GAVE_UP = "the reconnect policy ran out of attempts"
    DISCONNECT = "disconnect() called"
    CLOSED = "disconnect() finished"


S, T = ClientState, Trigger

TRANSITIONS: Final[dict[tuple[ClientState, Trigger], ClientState]] = {
    (S.NEW, T.CONNECT): S.CONNECTING,
    (S.DISCONNECTED, T.CONNECT): S.CONNECTING,
    # An attempt may open a handshake and a connection only while someone wants one.
    (S.CONNECTING, T.OPENING): S.CONNECTING,
    (S.CONNECTING, T.OPENED): S.CONNECTING,
    (S.RECONNECTING, T.OPENING): S.RECONNECTING,
    (S.RECONNECTING, T.OPENED): S.RECONNECTING,
    (S.CONNECTING, T.ESTABLISHED): S.CONNECTED,
    (S.RECONNECTING, T.ESTABLISHED): S.CONNECTED,
    (S.CONNECTING, T.ATTEMPTS_FAILED): S.DISCONNECTED,
    # A loss while an attempt is still waiting for CONNECTED fails that attempt only.
    (S.CONNECTING, T.LOST): S.CONNECTING,
    (S.CONNECTING, T.LOST_RETRY): S.CONNECTING,
    (S.RECONNECTING, T.LOST): S.RECONNECTING,
    (S.RECONNECTING, T.LOST_RETRY): S.RECONNECTING,
    (S.CONNECTED, T.LOST): S.DISCONNECTED,
    (S.CONNECTED, T.LOST_RETRY): S.RECONNECTING,
    (S.RECONNECTING, T.GAVE_UP): S.DISCONNECTED,
    (S.NEW, T.DISCONNECT): S.DISCONNECTING,
    (S.CONNECTING, T.DISCONNECT): S.DISCONNECTING,
    (S.CONNECTED, T.DISCONNECT): S.DISCONNECTING,
    (S.RECONNECTING, T.DISCONNECT): S.DISCONNECTING,
    (S.DISCONNECTED, T.DISCONNECT): S.DISCONNECTING,
    (S.DISCONNECTING, T.CLOSED): S.CLOSED,
}

# Triggers that are only meaningful from the connection they name.
_ABOUT_A_CONNECTION: Final = frozenset({T.ESTABLISHED, T.LOST, T.LOST_RETRY})


@dataclass(frozen=True, slots=True)
class Transition:
    before: ClientState
    after: ClientState
    connection: Connection | None  # the current connection once the transition is made


class Lifecycle:
    """The client's state, its current connection and the attempt in flight, under one lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self.state = ClientState.NEW
        self.connection: Connection | None = None  # the current (or last) connection
        self.guard: HandshakeGuard | None = None  # the handshake in flight, if any
        self._attempts_in_flight = 0

    def fire(
        self,
        trigger: Trigger,
        connection: Connection | None = None,
        guard: HandshakeGuard | None = None,
    ) -> Transition | None:
        """Make the transition the table gives, or refuse (None) and change nothing.

        OPENING registers ``guard`` (the handshake that DISCONNECT aborts) and counts an
        attempt in flight until ``attempt_over()``; OPENED makes ``connection`` the current
        one.
        """
        with self._lock:
            before = self.state
            if trigger in _ABOUT_A_CONNECTION and connection is not self.connection:
                return None
            after = TRANSITIONS.get((before, trigger))
            if after is None:
                return None
            self.state = after
            if trigger is T.OPENING:
                self.guard = guard
                self._attempts_in_flight += 1
            elif trigger is T.OPENED:
                self.guard = None
                self.connection = connection
            self._changed.notify_all()
            return Transition(before, after, self.connection)

    def attempt_over(self) -> None:
        """An attempt counted by OPENING has ended: its connection is the current one, or
        it was refused and closed by the attempt itself."""
        with self._lock:
            self.guard = None
            self._attempts_in_flight -= 1
            self._changed.notify_all()

    def wait_for_attempts(self, deadline: float) -> bool:
        """Wait until no attempt is between OPENING and ``attempt_over``; False at the deadline."""
        with self._lock:
            while self._attempts_in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
            return True

    def wait_while(self, state: ClientState, deadline: float) -> ClientState:
        """Wait while the state is ``state`` (at most until ``deadline``); the state then."""
        with self._lock:
            while self.state is state:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
            return self.state

    def wait_for(self, state: ClientState, deadline: float) -> bool:
        with self._lock:
            while self.state is not state:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
            return True

    def snapshot(self) -> tuple[ClientState, Connection | None]:
        with self._lock:
            return self.state, self.connection
