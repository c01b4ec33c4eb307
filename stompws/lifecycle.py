"""The client's life cycle: its states, one connect attempt, and reconnecting after a loss.

``Reconnecting`` is a part of ``Client`` kept in its own module: the supervisor loop that,
after an established connection is lost, waits by the ``Reconnect`` policy, tries every URL,
subscribes again with the same ids, and gives up after the policy's attempts. It runs on its
own thread (``stompws-reconnect-N``), never in a listener, and never recursively.
"""

from __future__ import annotations

import enum
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .errors import NotConnected, StompError
from .frame import Frame
from .protocol import ClientProtocol, Outgoing, SubscriptionInfo

if TYPE_CHECKING:
    from .connection import Connection
    from .handles import Receipt, Subscription
    from .reconnect import Reconnect
    from .transport import Endpoint

__all__ = ["ClientState", "ConnectAttempt", "Reconnecting"]

logger = logging.getLogger("stompws.client")
_reconnectors = itertools.count(1)


class ClientState(enum.Enum):
    NEW = "new"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"  # lost; the reconnect policy is trying again
    DISCONNECTING = "disconnecting"
    DISCONNECTED = "disconnected"  # the connection was lost; connect() may be called again
    CLOSED = "closed"  # disconnect() was called: final


class ConnectAttempt:
    """connect()'s view of one attempt: the reader resolves it."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.frame: Frame | None = None
        self.error: BaseException | None = None

    def succeed(self, frame: Frame) -> None:
        self.frame = frame
        self.done.set()

    def fail(self, error: BaseException) -> None:
        if not self.done.is_set():
            self.error = error
            self.done.set()


def _resubscription(info: SubscriptionInfo) -> Callable[[ClientProtocol], Outgoing]:
    return lambda session: session.resubscribe(info)


class Reconnecting:
    _lock: threading.Lock
    _state: ClientState
    _state_changed: threading.Condition
    _connection: Connection | None
    _subscriptions: dict[str, Subscription]
    _reconnect: Reconnect | None
    _reconnector: threading.Thread | None
    _stop_reconnecting: threading.Event
    _endpoints: list[Endpoint]
    connect_timeout: float

    if TYPE_CHECKING:  # provided by Client

        def _connect_to(self, endpoint: Endpoint, seconds: float) -> Frame:
            raise NotImplementedError

        def _perform(
            self,
            build: Callable[[ClientProtocol], Outgoing],
            connection: Connection | None = None,
        ) -> Receipt | None:
            raise NotImplementedError

    def _connection_ended(
        self, connection: Connection, failure: StompError
    ) -> tuple[list[Subscription], bool]:
        with self._lock:
            if self._connection is not connection or self._state is not ClientState.CONNECTED:
                return [], False  # an attempt that failed, or the end that disconnect() asked for
            if self._reconnect is not None and not connection.ending_requested:
                self._state = ClientState.RECONNECTING
                self._state_changed.notify_all()
                return [], True
            self._state = ClientState.DISCONNECTED
            self._state_changed.notify_all()
            subscriptions = list(self._subscriptions.values())
            self._subscriptions.clear()
        return subscriptions, False

    def _start_reconnecting(self) -> None:
        with self._lock:
            if self._state is not ClientState.RECONNECTING:
                return
            self._stop_reconnecting.clear()
            thread = threading.Thread(
                target=self._reconnect_loop,
                name=f"stompws-reconnect-{next(_reconnectors)}",
                daemon=True,
            )
            self._reconnector = thread
        thread.start()

    def _reconnect_loop(self) -> None:
        """The supervisor: wait, try every URL, subscribe again; until CONNECTED or given up."""
        assert self._reconnect is not None  # only started when a policy is set
        last: StompError | None = None
        tries = 0
        for delay in self._reconnect.delays():
            if self._stop_reconnecting.wait(delay):
                return
            tries += 1
            for endpoint in self._endpoints:
                if self._stop_reconnecting.is_set():
                    return
                try:
                    self._connect_to(endpoint, self.connect_timeout)
                    connection = self._connection
                    assert connection is not None  # set by _connect_to
                    self._resubscribe(connection)
                except StompError as error:
                    last = error
                    logger.info("reconnect to %s failed: %s", endpoint.url, error)
                    continue
                with self._lock:
                    stale = self._state is not ClientState.RECONNECTING
                    if not stale and not connection.ended.is_set():
                        self._state = ClientState.CONNECTED
                        self._state_changed.notify_all()
                        return
                if stale:
                    # disconnect() came while this attempt was under way and may be gone
                    # already: this connection is nobody's, so end it here.
                    connection.ending_requested = True
                    connection.abort()
                    connection.join(time.monotonic() + 1.0)
                    return
        with self._lock:
            if self._state is not ClientState.RECONNECTING:
                return
            self._state = ClientState.DISCONNECTED
            self._state_changed.notify_all()
            subscriptions = list(self._subscriptions.values())
            self._subscriptions.clear()
        reason = NotConnected(f"gave up reconnecting after {tries} attempts: {last}")
        for subscription in subscriptions:
            subscription._close(reason)

    def _resubscribe(self, connection: Connection) -> None:
        for subscription in list(self._subscriptions.values()):
            info = SubscriptionInfo(
                subscription.id, subscription.destination, subscription.ack, subscription.headers
            )
            self._perform(_resubscription(info), connection)
