"""What the client does with what its connections report (on the reader thread, no lock held).

``EventHandling`` is a part of ``Client`` kept in its own module: it turns session events into
listener calls, resolved receipts and buffered messages, and a lost connection into failed
waits, lost transactions and, when configured, a reconnect.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from .errors import BrokerError, ConnectError, ConnectionClosed, StompError
from .frame import Frame
from .listener import isolated
from .protocol import (
    Connected,
    ErrorReceived,
    Event,
    HeartbeatReceived,
    Lost,
    MessageReceived,
    ReceiptReceived,
)

if TYPE_CHECKING:
    from .connection import Connection
    from .handles import Receipt, Subscription, Transaction
    from .lifecycle import ConnectAttempt
    from .listener import Listeners

__all__ = ["EventHandling"]

logger = logging.getLogger("stompws.client")


class EventHandling:
    _listeners: Listeners
    _lock: threading.Lock
    _connection: Connection | None
    _attempt: ConnectAttempt | None
    _receipts: dict[str, Receipt]
    _subscriptions: dict[str, Subscription]
    _transactions: dict[str, Transaction]
    _last_error: BrokerError | None
    _unmatched_seen: set[str]

    if TYPE_CHECKING:  # provided by Reconnecting; a stub here would shadow it in the MRO

        def _connection_ended(
            self, connection: Connection, failure: StompError
        ) -> tuple[list[Subscription], bool]:
            """Set the client's state after a loss; return the subscriptions that end with it
            and whether to reconnect."""
            raise NotImplementedError

        def _start_reconnecting(self) -> None:
            raise NotImplementedError

    def connection_events(self, connection: Connection, events: list[Event]) -> None:
        listeners = self._listeners
        only_heartbeats = True
        for event in events:
            if type(event) is MessageReceived:
                only_heartbeats = False
                self._last_error = None
                self._deliver(connection, event)
            elif type(event) is HeartbeatReceived:
                continue
            elif type(event) is ReceiptReceived:
                only_heartbeats = False
                receipt = self._receipts.pop(event.receipt_id, None)
                if receipt is not None:
                    receipt._resolve(event.frame)
                listeners.call("on_receipt", event.frame)
            elif type(event) is ErrorReceived:
                only_heartbeats = False
                self._on_error(event)
            elif type(event) is Connected:
                only_heartbeats = False
                attempt = self._attempt
                if attempt is not None:
                    attempt.succeed(event.frame)
                listeners.call("on_connected", event.frame)
        if only_heartbeats:
            for _ in events:
                listeners.call("on_heartbeat")

    def _deliver(self, connection: Connection, event: MessageReceived) -> None:
        frame = event.frame
        frame._acker = connection.acker  # type: ignore[assignment]
        listeners = self._listeners
        listeners.call("on_message", frame)
        info = event.subscription
        subscription = self._subscriptions.get(info.id) if info is not None else None
        if subscription is None:
            if not listeners.handle_message():
                self._unmatched(frame)
            return
        if subscription.callback is not None:
            isolated(subscription.callback, frame, listeners)
        else:
            subscription._deliver(frame, connection, listeners.handle_message())

    def _unmatched(self, frame: Frame) -> None:
        # Nobody receives a message for a subscription this client did not make (a RabbitMQ
        # /temp-queue/ reply, a subscription already ended): say so, once per subscription.
        name = frame.headers.get("subscription", "")
        if name in self._unmatched_seen:
            return
        self._unmatched_seen.add(name)
        logger.warning(
            "%r: MESSAGE for subscription %r, which this client did not make, reached no "
            "listener; add a Listener with on_message to receive such messages (RabbitMQ "
            "delivers /temp-queue/ replies this way)",
            self,
            name,
        )

    def _on_error(self, event: ErrorReceived) -> None:
        error = BrokerError(event.frame)
        self._last_error = error
        logger.warning("%r: %s", self, error)
        if event.receipt_id is not None:
            receipt = self._receipts.pop(event.receipt_id, None)
            if receipt is not None:
                receipt._fail(error)
        attempt = self._attempt
        if attempt is not None and not attempt.done.is_set():
            attempt.fail(error)
        self._listeners.call("on_error", event.frame)

    def connection_heartbeat_timeout(self, connection: Connection) -> None:
        self._listeners.call("on_heartbeat_timeout")

    def connection_lost(
        self, connection: Connection, reason: BaseException | None, lost: Lost
    ) -> None:
        # A close right after an ERROR is the broker acting on that ERROR: report the ERROR.
        if isinstance(reason, ConnectionClosed) and self._last_error is not None:
            reason = self._last_error
        failure: StompError = (
            reason
            if isinstance(reason, StompError)
            else ConnectionClosed("the client disconnected")
            if reason is None
            else ConnectionClosed(f"connection failed: {reason!r}")
        )
        with self._lock:
            receipts = [
                self._receipts.pop(rid)
                for rid, receipt in list(self._receipts.items())
                if receipt._connection is connection
            ]
            transactions = list(self._transactions.values())
            self._transactions.clear()
            attempt = self._attempt
        subscriptions, reconnect = self._connection_ended(connection, failure)
        for receipt in receipts:
            receipt._fail(failure)
        for tx in transactions:
            tx.lost = failure
        if attempt is not None and not attempt.done.is_set():
            attempt.fail(
                failure
                if isinstance(failure, (BrokerError, ConnectError))
                else ConnectError(f"{connection.transport.endpoint.url}: {failure}")
            )
        for subscription in subscriptions:
            subscription._close(failure)
        self._listeners.call("on_disconnected", reason)
        if reconnect:
            # After on_disconnected, so that listeners see this loss before the next attempt.
            self._start_reconnecting()
