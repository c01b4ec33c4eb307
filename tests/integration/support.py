"""What the integration tests share besides fixtures: the brokers, targets and a recorder."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest

import stompws

from ..support import brokers as real
from ..waiting import wait_until

LOGIN = "guest"
PASSCODE = "guest"
VERSIONS = ("1.0", "1.1", "1.2")
WAIT = 10.0  # seconds for anything that should arrive: a failure, never a slow pass


@dataclass(frozen=True)
class Broker:
    name: str  # "rabbitmq-ws"
    vendor: str  # "rabbitmq" or "activemq"
    transport: str  # "ws" or "tcp"
    url: str
    host: str
    port: int


# The embedded broker (stompws.testing) is one more broker in the same parametrization. Its
# ports are the system's choice when conftest.py starts it (port 0); until then its entries
# say port 0, and the ``target`` fixture hands tests the real ones (``with_ports``). Ports
# picked here at import and bound minutes later could be taken in between.
EMBEDDED_HOST = "127.0.0.1"


def embedded(transport: str, port: int) -> Broker:
    url = (
        f"ws://{EMBEDDED_HOST}:{port}/ws"
        if transport == "ws"
        else f"stomp://{EMBEDDED_HOST}:{port}"
    )
    return Broker(f"embedded-{transport}", "embedded", transport, url, EMBEDDED_HOST, port)


BROKERS = {
    broker.name: broker
    for broker in (
        Broker(
            "rabbitmq-ws", "rabbitmq", "ws", real.RABBITMQ_WS_URL, real.HOST, real.RABBITMQ_WS_PORT
        ),
        Broker(
            "rabbitmq-tcp",
            "rabbitmq",
            "tcp",
            real.RABBITMQ_TCP_URL,
            real.HOST,
            real.RABBITMQ_STOMP_PORT,
        ),
        Broker(
            "activemq-tcp",
            "activemq",
            "tcp",
            real.ACTIVEMQ_TCP_URL,
            real.HOST,
            real.ACTIVEMQ_STOMP_PORT,
        ),
        embedded("ws", 0),
        embedded("tcp", 0),
    )
}


@dataclass(frozen=True)
class Target:
    """One broker endpoint and the one STOMP version a test offers it."""

    broker: Broker
    version: str

    @property
    def id(self) -> str:
        return f"{self.broker.name}-{self.version}"

    @property
    def url(self) -> str:
        return self.broker.url

    @property
    def rabbitmq(self) -> bool:
        return self.broker.vendor == "rabbitmq"

    @property
    def activemq(self) -> bool:
        return self.broker.vendor == "activemq"

    @property
    def embedded(self) -> bool:
        return self.broker.vendor == "embedded"

    @property
    def websocket(self) -> bool:
        return self.broker.transport == "ws"


def targets(
    *, brokers: Sequence[str] | None = None, versions: Sequence[str] = VERSIONS
) -> list[Any]:
    """``target`` params for these brokers (names or vendors) and versions, for
    ``@pytest.mark.parametrize("target", targets(...), indirect=True)``."""
    return [
        pytest.param(Target(broker, version), id=f"{broker.name}-{version}")
        for broker in BROKERS.values()
        if brokers is None or broker.name in brokers or broker.vendor in brokers
        for version in versions
    ]


def new_queue() -> str:
    """A queue name never used before (queues outlive the test on both brokers)."""
    return real.new_queue("it")


class Recorder(stompws.Listener):
    """Records every event, in order, with the thread it came on; waits on them."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.threads: list[str] = []
        self.times: list[float] = []  # time.monotonic() of each event
        self._condition = threading.Condition()

    def _add(self, name: str, value: Any) -> None:
        with self._condition:
            self.events.append((name, value))
            self.threads.append(threading.current_thread().name)
            self.times.append(time.monotonic())
            self._condition.notify_all()

    def of(self, name: str) -> list[Any]:
        with self._condition:
            return [value for event, value in self.events if event == name]

    def times_of(self, name: str) -> list[float]:
        with self._condition:
            return [
                at for (event, _), at in zip(self.events, self.times, strict=True) if event == name
            ]

    def wait_for(self, name: str, count: int = 1, timeout: float = WAIT) -> list[Any]:
        """The values of event ``name`` once there are at least ``count``."""
        return wait_until(
            self._condition,
            lambda: found if len(found := self.of(name)) >= count else None,
            f"{count} × {name}",
            timeout,
        )

    def wait_past(self, name: str, since: float, seconds: float, timeout: float) -> list[float]:
        """The times of event ``name`` once one came ``seconds`` or more after ``since``: a
        window that ends on an event, so that what did not happen in it is proven."""

        def past() -> list[float] | None:
            found = self.times_of(name)
            return found if found and found[-1] >= since + seconds else None

        return wait_until(
            self._condition,
            past,
            f"{name} {seconds:g} s after the start",
            timeout,
        )

    def on_connected(self, frame: stompws.Frame) -> None:
        self._add("connected", frame)

    def on_message(self, frame: stompws.Frame) -> None:
        self._add("message", frame)

    def on_receipt(self, frame: stompws.Frame) -> None:
        self._add("receipt", frame)

    def on_error(self, frame: stompws.Frame) -> None:
        self._add("error", frame)

    def on_disconnected(self, reason: BaseException | None) -> None:
        self._add("disconnected", reason)

    def on_heartbeat(self) -> None:
        self._add("heartbeat", None)

    def on_heartbeat_timeout(self) -> None:
        self._add("heartbeat_timeout", None)

    def on_listener_error(self, exc: BaseException, event: str) -> None:
        self._add("listener_error", (exc, event))


class Collector:
    """A subscription callback that keeps the frames and can wait for a number of them."""

    def __init__(self) -> None:
        self.frames: list[stompws.Frame] = []
        self.threads: set[str] = set()
        self._condition = threading.Condition()

    def __call__(self, frame: stompws.Frame) -> None:
        with self._condition:
            self.frames.append(frame)
            self.threads.add(threading.current_thread().name)
            self._condition.notify_all()

    def wait_for(self, count: int, timeout: float = WAIT) -> list[stompws.Frame]:
        try:
            return self._wait_for(count, timeout)
        except AssertionError as error:
            # How many did come tells a slow broker from a lost or duplicated frame.
            raise AssertionError(f"{error}: {len(self.frames)} arrived") from None

    def _wait_for(self, count: int, timeout: float) -> list[stompws.Frame]:
        return wait_until(
            self._condition,
            lambda: list(self.frames) if len(self.frames) >= count else None,
            f"{count} messages",
            timeout,
        )


def drain_until(
    subscription: stompws.Subscription, sentinel: str, timeout: float = WAIT
) -> list[str]:
    """The bodies got from ``subscription`` before the one equal to ``sentinel``.

    Send the sentinel after the messages that may or may not come: on a queue it arrives
    after them, so this proves what did not arrive without sleeping.
    """
    bodies: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        frame = subscription.get(timeout=max(deadline - time.monotonic(), 0.01))
        if frame.text == sentinel:
            return bodies
        bodies.append(frame.text)
