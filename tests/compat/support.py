"""What the paired tests share: the two implementations, the broker endpoints, a recorder."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

# stomp.py looks this machine's names up in DNS when imported, unless told not to: the
# tests talk to 127.0.0.1 only.
os.environ.setdefault("STOMP_SKIP_HOSTNAME_SCAN", "1")

import stomp
import stomp.exception
import stomp.listener

import stompws.compat

from ..support import brokers as real
from ..waiting import wait_until

LOGIN = "guest"
PASSCODE = "guest"
WAIT = 10.0  # seconds for anything that should arrive: a failure, never a slow pass


@dataclass(frozen=True)
class Implementation:
    """stomp.py 9 or stompws.compat, with the names the tests need from each."""

    name: str
    module: ModuleType
    test_listener: type[Any]
    not_connected: type[BaseException]
    connect_failed: type[BaseException]


IMPLEMENTATIONS = {
    "stomp.py": Implementation(
        "stomp.py",
        stomp,
        stomp.listener.TestListener,
        stomp.exception.NotConnectedException,
        stomp.exception.ConnectFailedException,
    ),
    "compat": Implementation(
        "compat",
        stompws.compat,
        stompws.compat.TestListener,
        stompws.compat.NotConnectedException,
        stompws.compat.ConnectFailedException,
    ),
}


@dataclass(frozen=True)
class Endpoint:
    name: str  # "rabbitmq-ws"
    vendor: str  # "rabbitmq" or "activemq"
    host: str
    port: int
    websocket: bool

    @property
    def rabbitmq(self) -> bool:
        return self.vendor == "rabbitmq"


ENDPOINTS = {
    item.name: item
    for item in (
        Endpoint("rabbitmq-ws", "rabbitmq", real.HOST, real.RABBITMQ_WS_PORT, True),
        Endpoint("rabbitmq-tcp", "rabbitmq", real.HOST, real.RABBITMQ_STOMP_PORT, False),
        Endpoint("activemq-tcp", "activemq", real.HOST, real.ACTIVEMQ_STOMP_PORT, False),
    )
}


def new_queue() -> str:
    """A queue name never used before (queues outlive the test on both brokers)."""
    return real.new_queue("compat")


class Recorder:
    """A stomp.py-shaped listener (no base class: both implementations take any object with
    the callbacks) that records events in order and waits for them with a timeout."""

    def __init__(self, log: list[tuple[str, str]] | None = None, name: str = "") -> None:
        self.events: list[tuple[str, Any]] = []
        self.shared = log  # (listener name, event) across listeners, for the order test
        self.name = name
        self._condition = threading.Condition()

    def _add(self, event: str, value: Any = None) -> None:
        with self._condition:
            self.events.append((event, value))
            if self.shared is not None:
                self.shared.append((self.name, event))
            self._condition.notify_all()

    def names(self) -> list[str]:
        with self._condition:
            return [event for event, _ in self.events]

    def of(self, event: str) -> list[Any]:
        with self._condition:
            return [value for name, value in self.events if name == event]

    def wait_for(self, event: str, count: int = 1, timeout: float = WAIT) -> list[Any]:
        return wait_until(
            self._condition,
            lambda: found if len(found := self.of(event)) >= count else None,
            f"{count} x {event}",
            timeout,
        )

    def wait_for_body(self, body: Any, timeout: float = WAIT) -> list[Any]:
        """The message frames up to the one with this body."""

        def upto() -> list[Any] | None:
            frames = self.of("message")
            for index, frame in enumerate(frames):
                if frame.body == body:
                    return frames[: index + 1]
            return None

        return wait_until(self._condition, upto, f"message {body!r}", timeout)

    def on_connecting(self, host_and_port: tuple[str, int]) -> None:
        self._add("connecting", tuple(host_and_port))

    def on_connected(self, frame: Any) -> None:
        self._add("connected", frame)

    def on_message(self, frame: Any) -> None:
        self._add("message", frame)

    def on_receipt(self, frame: Any) -> None:
        self._add("receipt", frame.headers.get("receipt-id"))

    def on_error(self, frame: Any) -> None:
        self._add("error", frame)

    def on_disconnected(self) -> None:
        self._add("disconnected")

    def on_heartbeat(self) -> None:
        self._add("heartbeat")


def connect(connection: Any) -> Any:
    connection.connect(LOGIN, PASSCODE, wait=True)
    return connection


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    """Poll for a state that no callback announces (e.g. ``is_connected()`` turning false)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} within {timeout:g} s")
        time.sleep(0.01)
