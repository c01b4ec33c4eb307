from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

import stompws
from stompws.testing import Broker

from .support import WAIT, RawPeer, RawWsPeer


# The shipped plugin's fixtures (tests/conftest.py loads it) under the names these tests use.
@pytest.fixture
def broker(stomp_broker: Broker) -> Broker:
    return stomp_broker


@pytest.fixture(params=["ws", "tcp"])
def url(request: pytest.FixtureRequest, broker: Broker) -> str:
    return broker.ws_url if request.param == "ws" else broker.tcp_url


@pytest.fixture
def brokers(stomp_broker_factory: Callable[..., Broker]) -> Callable[..., Broker]:
    """Start brokers with any options; all are stopped after the test."""
    return stomp_broker_factory


@pytest.fixture
def clients() -> Iterator[Callable[..., stompws.Client]]:
    """Connected clients (heart-beats off unless asked); disconnected after the test."""
    made: list[stompws.Client] = []

    def connect(url: str, **options: Any) -> stompws.Client:
        options.setdefault("heartbeats", (0, 0))
        options.setdefault("connect_timeout", WAIT)
        client = stompws.Client(url, **options)
        made.append(client)
        client.connect()
        return client

    yield connect
    for client in made:
        client.disconnect(timeout=2.0)


@pytest.fixture
def raw() -> Iterator[Callable[..., RawPeer]]:
    """Bare STOMP peers (a WebSocket one for ws:// URLs), closed after the test."""
    peers: list[RawPeer] = []

    def open_peer(url: str, **options: Any) -> RawPeer:
        peer = RawWsPeer(url, **options) if url.startswith("ws") else RawPeer(url, **options)
        peers.append(peer)
        return peer

    yield open_peer
    for peer in peers:
        peer.close()
