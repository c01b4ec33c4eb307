"""pytest fixtures that run the embedded broker for a test.

Enable them in your ``conftest.py``::

    pytest_plugins = ["stompws.testing.pytest_plugin"]

then::

    def test_orders(stomp_broker):
        with stompws.Client(stomp_broker.ws_url) as client:
            ...

    def test_login(stomp_broker_factory):
        broker = stomp_broker_factory(users={"app": "secret"}, websocket=False)
        ...

Each broker lives for one test on free ports and is stopped (every thread joined) when the
test ends. Not registered as an entry point on purpose: installing stompws must not add
fixtures to every project's test session.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .broker import Broker

__all__ = ["stomp_broker", "stomp_broker_factory"]


@pytest.fixture
def stomp_broker() -> Iterator[Broker]:
    """A running ``Broker()`` with default settings: WebSocket and TCP on 127.0.0.1."""
    with Broker() as broker:
        yield broker


@pytest.fixture
def stomp_broker_factory() -> Iterator[Callable[..., Broker]]:
    """Start brokers with any ``Broker`` arguments: ``stomp_broker_factory(users={...})``."""
    brokers: list[Broker] = []

    def start(*args: Any, **options: Any) -> Broker:
        broker = Broker(*args, **options).start()
        brokers.append(broker)
        return broker

    yield start
    for broker in reversed(brokers):
        broker.stop()
