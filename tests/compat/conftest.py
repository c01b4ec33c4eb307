"""Fixtures for the paired tests: each scenario runs once with stomp.py 9 and once with
stompws.compat, against RabbitMQ (WebSocket and TCP) and ActiveMQ (TCP).

A broker that does not answer skips its tests, or fails them when the ``CI`` environment
variable is set: start the brokers with scripts/brokers/up.sh.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ..support import brokers as real
from ..support.ci import need
from .support import ENDPOINTS, IMPLEMENTATIONS, Endpoint, Implementation

Factory = Callable[..., Any]
_problems: dict[str, str | None] = {}


def _probe(endpoint: Endpoint) -> str | None:
    if endpoint.name not in _problems:  # once per session
        _problems[endpoint.name] = real.probe(endpoint.name, endpoint.host, endpoint.port)
    return _problems[endpoint.name]


@pytest.fixture(params=list(IMPLEMENTATIONS))
def impl(request: pytest.FixtureRequest) -> Implementation:
    return IMPLEMENTATIONS[request.param]


@pytest.fixture(params=list(ENDPOINTS))
def endpoint(request: pytest.FixtureRequest) -> Endpoint:
    chosen = ENDPOINTS[request.param]
    problem = _probe(chosen)
    if problem is not None:
        need(problem)
    return chosen


@pytest.fixture
def make_connection(impl: Implementation, endpoint: Endpoint) -> Iterator[Factory]:
    """Makes a connection of ``impl``'s class for ``endpoint`` (WSConnection for WebSocket,
    else ``Connection12`` unless ``version=`` says otherwise; ``port=`` replaces the
    endpoint's, for a proxy in front of it); every one made is
    disconnected at teardown, before the leaked-thread check."""
    made: list[Any] = []

    def make(
        *,
        version: str = "1.2",
        listeners: dict[str, Any] | None = None,
        port: int | None = None,
        **options: Any,
    ) -> Any:
        stomp = impl.module
        if version != "1.0":  # 1.0 has no heart-beats: its class takes no such argument
            options.setdefault("heartbeats", (0, 0))
        if endpoint.rabbitmq and version != "1.0":  # 1.0 sends no host header
            # stomp.py 1.2 sends its host name as `host` unless given a vhost; RabbitMQ
            # refuses "127.0.0.1" as a virtual host.
            options.setdefault("vhost", "/")
        hosts = [(endpoint.host, endpoint.port if port is None else port)]
        if endpoint.websocket:
            connection = stomp.WSConnection(hosts, ws_path="/ws", **options)
        else:
            cls = {
                "1.0": stomp.Connection10,
                "1.1": stomp.Connection11,
                "1.2": stomp.Connection12,
            }[version]
            connection = cls(hosts, **options)
        for name, listener in (listeners or {}).items():
            connection.set_listener(name, listener)
        made.append(connection)
        return connection

    yield make
    for connection in made:
        if connection.is_connected():
            connection.disconnect()
    # stomp.py's disconnect() without a receipt returns before its socket closes.
    deadline = time.monotonic() + 5.0
    while any(c.is_connected() for c in made) and time.monotonic() < deadline:
        time.sleep(0.02)
