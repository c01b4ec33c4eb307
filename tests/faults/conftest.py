"""Fixtures for the fault-injection tests: real brokers behind a ``FaultProxy``.

Each broker is probed once per session (a TCP connect). One that does not answer skips the
tests that need it, or fails them when the ``CI`` environment variable is set: in CI the
brokers are required (the approach of tests/integration/conftest.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

import stompws
from stompws.testing import Broker as EmbeddedBroker

from ..support import brokers as real
from ..support.ci import need
from ..support.embedded import package_broker
from .proxy import FaultProxy
from .support import BROKERS, LOGIN, PASSCODE, Broker

ProxyFactory = Callable[[Broker], FaultProxy]
ClientFactory = Callable[..., stompws.Client]


def _probe(broker: Broker) -> str | None:
    return real.probe(broker.name, broker.host, broker.port)


@pytest.fixture(scope="session")
def _probed() -> dict[str, str | None]:
    return {}


@pytest.fixture
def require(_probed: dict[str, str | None]) -> Callable[[Broker], Broker]:
    """``require(broker)`` skips the test (fails it in CI) when the broker is down."""

    def check(broker: Broker) -> Broker:
        if broker.name not in _probed:
            _probed[broker.name] = _probe(broker)
        problem = _probed[broker.name]
        if problem is not None:
            need(problem)
        return broker

    return check


EMBEDDED = ("embedded-tcp", "embedded-ws")


# The project's own broker behind the same proxy: the fault tests without anything outside
# this process. Its heart-beat tolerance is 4, not 2: it counts the client's silence from its
# own CONNECTED, so a proxy's latency delays the client's first beat by a whole round trip
# (real brokers allow more: RabbitMQ 3 intervals, ActiveMQ its own schedule).
embedded_broker = package_broker(
    "embedded_broker", users={LOGIN: PASSCODE}, heartbeat_tolerance=4.0
)


def _embedded(name: str, running: EmbeddedBroker) -> Broker:
    url = running.ws_url if name == "embedded-ws" else running.tcp_url
    port = urlsplit(url).port
    assert port is not None
    return Broker(name, url, "127.0.0.1", port)


@pytest.fixture(params=[*BROKERS, *EMBEDDED])
def broker(request: pytest.FixtureRequest, require: Callable[[Broker], Broker]) -> Broker:
    """Each broker endpoint in turn, real and embedded (narrow with ``indirect``
    parametrization)."""
    if request.param in EMBEDDED:
        return _embedded(request.param, request.getfixturevalue("embedded_broker"))
    return require(BROKERS[request.param])


@pytest.fixture
def proxy_for() -> Iterator[ProxyFactory]:
    """Makes a started ``FaultProxy`` in front of a broker; all are stopped at teardown."""
    made: list[FaultProxy] = []

    def make(target: Broker) -> FaultProxy:
        proxy = FaultProxy(target.host, target.port).start()
        made.append(proxy)
        return proxy

    yield make
    for proxy in made:
        proxy.stop()


@pytest.fixture
def proxy(broker: Broker, proxy_for: ProxyFactory) -> FaultProxy:
    """A proxy in front of the ``broker`` of the test."""
    return proxy_for(broker)


@pytest.fixture
def make_client() -> Iterator[ClientFactory]:
    """Makes a ``Client`` (``url`` first, then Client options); every client made is
    disconnected at teardown, before the leaked-thread check."""
    made: list[stompws.Client] = []

    def make(url: str, **options: Any) -> stompws.Client:
        options.setdefault("login", LOGIN)
        options.setdefault("passcode", PASSCODE)
        client = stompws.Client(url, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.disconnect(timeout=5.0)


@pytest.fixture(autouse=True)
def no_leaked_proxy_threads() -> Iterator[None]:
    """Fail a test that leaves a proxy thread running (stop() must join them all)."""
    before = {thread.ident for thread in threading.enumerate()}
    yield
    leaked = [
        thread.name
        for thread in threading.enumerate()
        if thread.name.startswith("faultproxy-")
        and thread.ident not in before
        and thread.is_alive()
    ]
    assert not leaked, f"proxy threads outlived the test: {leaked}"
