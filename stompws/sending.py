"""How an operation reaches the wire: the live connection, and one frame built and written.

``Sending`` is a part of ``Client`` kept in its own module. ``_live`` finds the connection to
use (waiting through a reconnect, never on a reader thread that would wait for itself);
``_perform`` builds a frame with the session, registers its receipt and writes it, as one
step under the connection's lock, then tells the listeners' ``on_send``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .errors import NotConnected, UsageError
from .handles import Receipt
from .lifecycle import ClientState
from .protocol import ClientProtocol, Outgoing, State

if TYPE_CHECKING:
    from .connection import Connection
    from .listener import Listeners

__all__ = ["Sending"]


class Sending:
    _lock: threading.Lock
    _state: ClientState
    _state_changed: threading.Condition
    _connection: Connection | None
    _receipts: dict[str, Receipt]
    _listeners: Listeners
    connect_timeout: float
    receipt_timeout: float

    def _live(self) -> Connection:
        """The live connection; while reconnecting, waits up to ``connect_timeout`` for it."""
        with self._lock:
            current = self._connection
            if (
                current is not None
                and current.on_reader_thread
                and current.protocol.state is State.CONNECTED
                and not current.ended.is_set()
            ):
                # A listener's on_connected on the connection being established: its
                # session is up although connect() (or the reconnect) has not returned yet.
                return current
            if self._state is ClientState.RECONNECTING:
                old = self._connection
                if old is not None and old.on_reader_thread:
                    # A listener of the lost connection: the reconnect starts only after it
                    # returns, so waiting here would only run out the clock.
                    raise NotConnected("the connection was lost; reconnecting")
                deadline = time.monotonic() + self.connect_timeout
                while self._state is ClientState.RECONNECTING:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise NotConnected(
                            f"still reconnecting after {self.connect_timeout:g} s (connect_timeout)"
                        )
                    self._state_changed.wait(remaining)
            connection = self._connection
            state = self._state
        if state is not ClientState.CONNECTED or connection is None:
            raise NotConnected(f"the client is {state.value}, not connected")
        if connection.ended.is_set():
            raise NotConnected(f"the connection has ended: {connection.reason}")
        return connection

    def _perform(
        self,
        build: Callable[[ClientProtocol], Outgoing],
        connection: Connection | None = None,
    ) -> Receipt | None:
        """Build and write a frame on ``connection``, or on the live connection.

        On the live connection, a session found already closed (the loss is known to the
        session but not yet to the client; nothing was written) is tried once more after
        the loss is handled: with reconnect, on the next connection.
        """
        if connection is not None:
            return self._perform_on(connection, build)
        live = self._live()
        try:
            return self._perform_on(live, build)
        except NotConnected:
            if live.protocol.state is not State.CLOSED or live.on_reader_thread:
                raise
            live.ended.wait(self.connect_timeout)
            return self._perform_on(self._live(), build)

    def _perform_on(
        self, connection: Connection, build: Callable[[ClientProtocol], Outgoing]
    ) -> Receipt | None:
        registered: list[Receipt] = []

        def build_and_register(session: ClientProtocol) -> Outgoing:
            outgoing = build(session)
            if outgoing.receipt_id is not None:
                # Under the connection's lock and before the write: the RECEIPT cannot
                # arrive before its waiter exists.
                receipt = Receipt(
                    outgoing.receipt_id, outgoing.frame.command, connection, self.receipt_timeout
                )
                self._receipts[outgoing.receipt_id] = receipt
                registered.append(receipt)
            return outgoing

        outgoing = connection.perform(build_and_register)
        if self._listeners:
            self._listeners.call("on_send", outgoing.frame)
        return registered[0] if registered else None

    def _refuse_on_reader(self, what: str) -> None:
        connection = self._connection
        if connection is not None and connection.on_reader_thread:
            raise UsageError(
                f"cannot {what} inside a listener or callback: the reader thread that "
                "delivers messages is the one that would wait"
            )
