"""Listeners shaped like stomp.py 9's, for ``Connection.set_listener(name, listener)``.

The callbacks and their arguments are stomp.py's (``on_connecting((host, port))``,
``on_disconnected()`` without a reason, ...). Where we differ on purpose:

* every wait takes a timeout (``DEFAULT_WAIT`` seconds unless given; ``None`` waits for ever)
  and raises ``TimeoutError`` when it runs out, where stomp.py waits for ever;
* ``on_disconnecting()`` is called before the DISCONNECT frame goes out (stomp.py 9 never
  calls it);
* a listener that raises is logged and the others still run; the connection stays up
  (in stomp.py the exception ends the receiver loop and drops the connection).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ..errors import ReceiptTimeout
from .frame import Frame

__all__ = [
    "DEFAULT_WAIT",
    "ConnectionListener",
    "PrintingListener",
    "StatsListener",
    "TestListener",
    "WaitingListener",
]

DEFAULT_WAIT = 60.0  # seconds: long enough for any broker, short enough to never hang a test
logger = logging.getLogger("stompws.compat")

HostAndPort = tuple[str, int]


class ConnectionListener:
    """Base class: every callback is optional and does nothing here."""

    def on_connecting(self, host_and_port: HostAndPort) -> None:
        """A socket to ``(host, port)`` is open; CONNECT goes out next."""

    def on_connected(self, frame: Frame) -> None:
        """The broker's CONNECTED frame arrived."""

    def on_disconnecting(self) -> None:
        """``disconnect()`` is about to send DISCONNECT."""

    def on_disconnected(self) -> None:
        """The connection ended (after ``disconnect()``, or lost)."""

    def on_heartbeat_timeout(self) -> None:
        """The broker was silent for longer than the heart-beat tolerance."""

    def on_before_message(self, frame: Frame) -> None:
        """A MESSAGE arrived; called on every listener before any ``on_message``, with the
        same frame object, so that a listener may change it for the others."""

    def on_message(self, frame: Frame) -> None:
        """A MESSAGE arrived."""

    def on_receipt(self, frame: Frame) -> None:
        """A RECEIPT arrived; ``frame.headers["receipt-id"]`` is the id you asked for."""

    def on_error(self, frame: Frame) -> None:
        """An ERROR frame arrived."""

    def on_send(self, frame: Frame) -> None:
        """A frame was written (stomp.py calls this just before the write)."""

    def on_heartbeat(self) -> None:
        """A heart-beat arrived."""

    def on_receiver_loop_completed(self, frame: Frame | None) -> None:
        """The reader of the connection ended (right after ``on_disconnected``)."""


def _wait(condition: threading.Condition, ready: Callable[[], bool], timeout: float | None) -> bool:
    deadline = None if timeout is None else time.monotonic() + timeout
    with condition:
        while not ready():
            if deadline is None:
                condition.wait()
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            condition.wait(remaining)
        return True


class WaitingListener(ConnectionListener):
    """Waits for one receipt id, and for the end of the connection."""

    def __init__(self, receipt: str | None) -> None:
        self.receipt = receipt
        self.received = False
        self.disconnected = False
        self.receipt_condition = threading.Condition()
        self.disconnect_condition = threading.Condition()

    def on_receipt(self, frame: Frame) -> None:
        if frame.headers.get("receipt-id") == self.receipt:
            with self.receipt_condition:
                self.received = True
                self.receipt_condition.notify_all()

    def on_disconnected(self) -> None:
        with self.disconnect_condition:
            self.disconnected = True
            self.disconnect_condition.notify_all()

    def wait_on_receipt(self, timeout: float | None = DEFAULT_WAIT) -> None:
        """Return once the receipt arrived (and reset, as stomp.py does); raises
        ``stompws.ReceiptTimeout`` (a ``TimeoutError``) after ``timeout`` seconds."""
        if not _wait(self.receipt_condition, lambda: self.received, timeout):
            raise ReceiptTimeout(f"no RECEIPT {self.receipt} within {timeout:g} s")
        with self.receipt_condition:
            self.received = False

    def wait_on_disconnected(self, timeout: float | None = DEFAULT_WAIT) -> None:
        """Return once disconnected; raises ``TimeoutError`` after ``timeout`` seconds."""
        if not _wait(self.disconnect_condition, lambda: self.disconnected, timeout):
            raise TimeoutError(f"still connected after {timeout:g} s")


class StatsListener(ConnectionListener):
    """Counts what happens; ``str()`` gives one line per counter."""

    def __init__(self) -> None:
        self.errors = 0
        self.connections = 0
        self.disconnects = 0
        self.messages = 0
        self.messages_sent = 0
        self.heartbeat_timeouts = 0
        self.heartbeat_count = 0

    def on_connecting(self, host_and_port: HostAndPort) -> None:
        self.connections += 1

    def on_disconnected(self) -> None:
        self.disconnects += 1

    def on_error(self, frame: Frame) -> None:
        self.errors += 1

    def on_message(self, frame: Frame) -> None:
        self.messages += 1

    def on_send(self, frame: Frame) -> None:
        self.messages_sent += 1

    def on_heartbeat_timeout(self) -> None:
        self.heartbeat_timeouts += 1

    def on_heartbeat(self) -> None:
        self.heartbeat_count += 1

    def __str__(self) -> str:
        rows = (
            ("Connections", self.connections),
            ("Disconnects", self.disconnects),
            ("Messages sent", self.messages_sent),
            ("Messages received", self.messages),
            ("Heartbeats received", self.heartbeat_count),
            ("Errors", self.errors),
        )
        return "\n".join(f"{label}: {count}" for label, count in rows)


class PrintingListener(ConnectionListener):
    """Prints each event (to the ``stompws.compat`` logger with ``print_to_log``)."""

    def __init__(self, print_to_log: bool = False) -> None:
        self.print_to_log = print_to_log

    def _show(self, text: str) -> None:
        if self.print_to_log:
            logger.info("%s", text)
        else:
            print(text)

    def on_connecting(self, host_and_port: HostAndPort) -> None:
        self._show(f"on_connecting {host_and_port[0]} {host_and_port[1]}")

    def on_connected(self, frame: Frame) -> None:
        self._show(f"on_connected {frame}")

    def on_disconnecting(self) -> None:
        self._show("on_disconnecting")

    def on_disconnected(self) -> None:
        self._show("on_disconnected")

    def on_heartbeat_timeout(self) -> None:
        self._show("on_heartbeat_timeout")

    def on_before_message(self, frame: Frame) -> None:
        self._show(f"on_before_message {frame}")

    def on_message(self, frame: Frame) -> None:
        self._show(f"on_message {frame}")

    def on_receipt(self, frame: Frame) -> None:
        self._show(f"on_receipt {frame}")

    def on_error(self, frame: Frame) -> None:
        self._show(f"on_error {frame}")

    def on_send(self, frame: Frame) -> None:
        self._show(f"on_send {frame}")  # Frame's str hides passcode and authorization

    def on_heartbeat(self) -> None:
        self._show("on_heartbeat")


class TestListener(StatsListener, WaitingListener, PrintingListener):
    """Stats, waiting and printing in one, and the messages kept in ``message_list`` as
    ``(headers, body)`` pairs."""

    __test__ = False  # not a pytest test class, despite its name

    def __init__(self, receipt: str | None = None, print_to_log: bool = False) -> None:
        StatsListener.__init__(self)
        WaitingListener.__init__(self, receipt)
        PrintingListener.__init__(self, print_to_log)
        self.message_list: list[tuple[dict[str, Any], Any]] = []
        self.message_condition = threading.Condition()
        self.message_received = False
        self.heartbeat_condition = threading.Condition()
        self.heartbeat_received = False
        self.timestamp = time.strftime("%Y%m%d%H%M%S")

    def wait_for_message(self, timeout: float | None = DEFAULT_WAIT) -> None:
        """Return once a message arrived since the last call; ``TimeoutError`` after
        ``timeout`` seconds."""
        if not _wait(self.message_condition, lambda: self.message_received, timeout):
            raise TimeoutError(f"no message within {timeout:g} s")
        with self.message_condition:
            self.message_received = False

    def get_latest_message(self) -> tuple[dict[str, Any], Any]:
        """The last message received, as (headers, body); ``IndexError`` before any."""
        return self.message_list[-1]

    def wait_for_heartbeat(self, timeout: float | None = DEFAULT_WAIT) -> None:
        """Until a heart-beat arrives (then forgets it); ``TimeoutError`` after ``timeout``."""
        if not _wait(self.heartbeat_condition, lambda: self.heartbeat_received, timeout):
            raise TimeoutError(f"no heart-beat within {timeout:g} s")
        with self.heartbeat_condition:
            self.heartbeat_received = False

    def on_connecting(self, host_and_port: HostAndPort) -> None:
        StatsListener.on_connecting(self, host_and_port)
        PrintingListener.on_connecting(self, host_and_port)

    def on_connected(self, frame: Frame) -> None:
        PrintingListener.on_connected(self, frame)

    def on_disconnected(self) -> None:
        StatsListener.on_disconnected(self)
        PrintingListener.on_disconnected(self)
        WaitingListener.on_disconnected(self)

    def on_heartbeat_timeout(self) -> None:
        StatsListener.on_heartbeat_timeout(self)
        PrintingListener.on_heartbeat_timeout(self)

    def on_message(self, frame: Frame) -> None:
        StatsListener.on_message(self, frame)
        PrintingListener.on_message(self, frame)
        with self.message_condition:
            self.message_list.append((frame.headers, frame.body))
            self.message_received = True
            self.message_condition.notify_all()

    def on_receipt(self, frame: Frame) -> None:
        PrintingListener.on_receipt(self, frame)
        WaitingListener.on_receipt(self, frame)

    def on_error(self, frame: Frame) -> None:
        StatsListener.on_error(self, frame)
        PrintingListener.on_error(self, frame)

    def on_send(self, frame: Frame) -> None:
        StatsListener.on_send(self, frame)
        PrintingListener.on_send(self, frame)

    def on_heartbeat(self) -> None:
        StatsListener.on_heartbeat(self)
        PrintingListener.on_heartbeat(self)
        with self.heartbeat_condition:
            self.heartbeat_received = True
            self.heartbeat_condition.notify_all()
