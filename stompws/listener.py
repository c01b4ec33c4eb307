"""Listeners: the callback objects a client calls, ready-made ones, and error-isolating dispatch.

Which thread calls a listener: the connection's reader thread calls ``on_connected``,
``on_message``, ``on_receipt``, ``on_error``, ``on_heartbeat`` and ``on_disconnected`` (at
the end of its connection: ``None`` when ``disconnect()`` asked for it); the heart-beat
thread calls ``on_heartbeat_timeout``; the thread that sends a frame calls ``on_send``;
``connect()``'s thread or the reconnect supervisor calls ``on_connecting`` (and
``on_disconnected`` for an attempt that failed before its connection existed); the
supervisor calls ``on_disconnected(ReconnectFailed)`` when it gives up. No client lock is
held during any call, so a listener may send, subscribe, ack and disconnect. It must not
block waiting for something only the reader can deliver (a receipt, a message): the client
refuses such waits from the reader thread with ``UsageError`` instead of deadlocking.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TextIO, TypeVar

from .errors import ConnectionClosed, StompError
from .frame import Frame
from .handles import Message

__all__ = ["Listener", "Listeners", "PrintingListener", "StatsListener", "WaitingListener"]

logger = logging.getLogger("stompws.listener")
T = TypeVar("T")


class Listener:
    """Base class: every method is optional and does nothing here."""

    def on_connecting(self, url: str) -> None:
        """A connection attempt to ``url`` (shown without credentials) starts."""

    def on_connected(self, frame: Frame) -> None:
        """The broker's CONNECTED frame arrived."""

    def on_message(self, frame: Message) -> None:
        """A MESSAGE frame arrived; ``frame.ack()`` / ``frame.nack()`` acknowledge it."""

    def on_receipt(self, frame: Frame) -> None:
        """A RECEIPT frame arrived."""

    def on_error(self, frame: Frame) -> None:
        """An ERROR frame arrived from the broker."""

    def on_heartbeat(self) -> None:
        """A heart-beat (an EOL between frames) arrived."""

    def on_heartbeat_timeout(self) -> None:
        """The broker was silent for longer than the heart-beat tolerance."""

    def on_disconnected(self, reason: BaseException | None) -> None:
        """The connection ended: ``None`` after ``disconnect()``, else what ended it."""

    def on_send(self, frame: Frame) -> None:
        """A frame was written to the connection."""

    def on_listener_error(self, exc: BaseException, event: str) -> None:
        """Another listener raised ``exc`` while handling ``event`` (a method name)."""


class Listeners:
    """The listeners of one client, called in the order they were added.

    The list is replaced, never changed in place, so calls iterate a snapshot without a lock.
    """

    def __init__(self) -> None:
        self._listeners: tuple[Listener, ...] = ()
        self._lock = threading.Lock()

    def add(self, listener: Listener) -> None:
        with self._lock:
            self._listeners = (*self._listeners, listener)

    def remove(self, listener: Listener) -> None:
        with self._lock:
            self._listeners = tuple(item for item in self._listeners if item is not listener)

    def __iter__(self) -> Iterator[Listener]:
        return iter(self._listeners)

    def __len__(self) -> int:
        return len(self._listeners)

    def handle_message(self) -> bool:
        """Whether some listener does something with messages (overrides ``on_message``)."""
        return any(type(item).on_message is not Listener.on_message for item in self._listeners)

    def call(self, event: str, *args: Any) -> None:
        """Call ``event`` on every listener; one that raises does not stop the others.

        A listener removed during this call by a listener (the same thread) is not called
        from then on, even for this event; from another thread, a removal takes effect at the
        next listener of a dispatch under way. A listener added during this call hears the
        next event."""
        snapshot = self._listeners
        for listener in snapshot:
            current = self._listeners
            if current is not snapshot and not any(item is listener for item in current):
                continue
            try:
                getattr(listener, event)(*args)
            except Exception as error:
                self.report(listener, error, event)

    def report(self, culprit: object, error: BaseException, event: str) -> None:
        logger.error("listener %r raised in %s", culprit, event, exc_info=error)
        for listener in self._listeners:
            if listener is culprit:
                continue
            try:
                listener.on_listener_error(error, event)
            except Exception:
                logger.exception("listener %r raised in on_listener_error", listener)


def isolated(callback: Callable[[Frame], None], frame: Frame, listeners: Listeners) -> None:
    """Run a subscription callback with the same isolation as a listener."""
    try:
        callback(frame)
    except Exception as error:
        listeners.report(callback, error, "callback")


class PrintingListener(Listener):
    """Prints every event, one line each; passcodes are never shown."""

    def __init__(self, stream: TextIO | None = None, *, bodies: bool = True) -> None:
        self.stream = stream
        self.bodies = bodies

    def _print(self, text: str) -> None:
        print(text, file=self.stream or sys.stdout, flush=True)

    def _frame(self, event: str, frame: Frame) -> None:
        headers = " ".join(
            f"{name}:{'***' if name.lower() in ('passcode', 'authorization') else value}"
            for name, value in frame.header_list
        )
        line = f"{event}: {frame.command} {headers}".rstrip()
        if self.bodies and frame.body:
            line += f" | {frame.body.decode(frame.charset, 'replace')}"
        self._print(line)

    def on_connecting(self, url: str) -> None:
        self._print(f"on_connecting: {url}")

    def on_connected(self, frame: Frame) -> None:
        self._frame("on_connected", frame)

    def on_message(self, frame: Frame) -> None:
        self._frame("on_message", frame)

    def on_receipt(self, frame: Frame) -> None:
        self._frame("on_receipt", frame)

    def on_error(self, frame: Frame) -> None:
        self._frame("on_error", frame)

    def on_heartbeat(self) -> None:
        self._print("on_heartbeat")

    def on_heartbeat_timeout(self) -> None:
        self._print("on_heartbeat_timeout")

    def on_disconnected(self, reason: BaseException | None) -> None:
        self._print(f"on_disconnected: {reason!r}" if reason else "on_disconnected")

    def on_send(self, frame: Frame) -> None:
        self._frame("on_send", frame)

    def on_listener_error(self, exc: BaseException, event: str) -> None:
        self._print(f"on_listener_error: {event}: {exc!r}")


class StatsListener(Listener):
    """Counts events; ``str()`` gives a one-line summary."""

    def __init__(self) -> None:
        self.connections = 0
        self.disconnects = 0
        self.messages = 0
        self.receipts = 0
        self.errors = 0
        self.heartbeats = 0
        self.heartbeat_timeouts = 0
        self.frames_sent = 0
        self.listener_errors = 0

    def on_connected(self, frame: Frame) -> None:
        self.connections += 1

    def on_disconnected(self, reason: BaseException | None) -> None:
        self.disconnects += 1

    def on_message(self, frame: Frame) -> None:
        self.messages += 1

    def on_receipt(self, frame: Frame) -> None:
        self.receipts += 1

    def on_error(self, frame: Frame) -> None:
        self.errors += 1

    def on_heartbeat(self) -> None:
        self.heartbeats += 1

    def on_heartbeat_timeout(self) -> None:
        self.heartbeat_timeouts += 1

    def on_send(self, frame: Frame) -> None:
        self.frames_sent += 1

    def on_listener_error(self, exc: BaseException, event: str) -> None:
        self.listener_errors += 1

    def __str__(self) -> str:
        return (
            f"connections={self.connections} disconnects={self.disconnects} "
            f"messages={self.messages} receipts={self.receipts} errors={self.errors} "
            f"heartbeats={self.heartbeats} heartbeat_timeouts={self.heartbeat_timeouts} "
            f"frames_sent={self.frames_sent} listener_errors={self.listener_errors}"
        )


class WaitingListener(Listener):
    """Keeps what arrives so that a thread can wait for it, always with a timeout.

    Each ``wait_for_*`` returns what it waited for, or raises ``TimeoutError`` after
    ``timeout`` seconds; ``wait_for_message`` and ``wait_for_receipt`` also raise
    ``ConnectionClosed`` when the connection ends first.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self.connected: list[Frame] = []
        self.messages: list[Frame] = []
        self.receipts: list[Frame] = []
        self.errors: list[Frame] = []
        self.disconnects: list[BaseException | None] = []
        self._taken_messages = 0

    def _add(self, items: list[Any], item: Any) -> None:
        with self._condition:
            items.append(item)
            self._condition.notify_all()

    def on_connected(self, frame: Frame) -> None:
        self._add(self.connected, frame)

    def on_message(self, frame: Frame) -> None:
        self._add(self.messages, frame)

    def on_receipt(self, frame: Frame) -> None:
        self._add(self.receipts, frame)

    def on_error(self, frame: Frame) -> None:
        self._add(self.errors, frame)

    def on_disconnected(self, reason: BaseException | None) -> None:
        self._add(self.disconnects, reason)

    def _wait(self, ready: Callable[[], T | None], what: str, timeout: float, closing: bool) -> T:
        deadline = time.monotonic() + timeout
        disconnects_before = len(self.disconnects)
        with self._condition:
            while True:
                found = ready()
                if found is not None:
                    return found
                if closing and len(self.disconnects) > disconnects_before:
                    reason = self.disconnects[-1]
                    detail = f": {reason}" if isinstance(reason, StompError) else ""
                    raise ConnectionClosed(f"disconnected while waiting for {what}{detail}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no {what} within {timeout:g} s")
                self._condition.wait(remaining)

    def wait_for_connected(self, timeout: float = 10.0) -> Frame:
        """The last CONNECTED frame, once one came; ``TimeoutError`` after ``timeout``."""
        return self._wait(
            lambda: self.connected[-1] if self.connected else None, "CONNECTED", timeout, False
        )

    def wait_for_message(self, timeout: float = 10.0) -> Frame:
        """The next message not yet returned by an earlier call."""

        def next_message() -> Frame | None:
            if self._taken_messages < len(self.messages):
                self._taken_messages += 1
                return self.messages[self._taken_messages - 1]
            return None

        return self._wait(next_message, "message", timeout, True)

    def wait_for_messages(self, count: int, timeout: float = 10.0) -> list[Frame]:
        """Every message so far once there are at least ``count``."""
        return self._wait(
            lambda: list(self.messages) if len(self.messages) >= count else None,
            f"{count} messages",
            timeout,
            True,
        )

    def wait_for_receipt(self, receipt_id: str | None = None, timeout: float = 10.0) -> Frame:
        """The RECEIPT for ``receipt_id`` (None: the first RECEIPT); ``TimeoutError`` after
        ``timeout``, ``ConnectionClosed`` when the client disconnects meanwhile."""

        def matching() -> Frame | None:
            for frame in self.receipts:
                if receipt_id is None or frame.headers.get("receipt-id") == receipt_id:
                    return frame
            return None

        return self._wait(matching, f"RECEIPT {receipt_id or ''}".strip(), timeout, True)

    def wait_for_disconnect(self, timeout: float = 10.0) -> BaseException | None:
        """The reason of the first disconnect (None after ``disconnect()``)."""
        found = self._wait(
            lambda: (self.disconnects[0],) if self.disconnects else None,
            "disconnect",
            timeout,
            False,
        )
        return found[0]
