"""What the integration tests share besides fixtures: the brokers and targets (the recorder
and the collector are tests/support/recording.py)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest

import stompws

from ..support import brokers as real
from ..support.recording import WAIT as WAIT  # the tests' one bound, re-exported

LOGIN = "guest"
PASSCODE = "guest"
VERSIONS = ("1.0", "1.1", "1.2")


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
