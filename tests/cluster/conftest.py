"""Fixtures for the tests against the three-node RabbitMQ cluster (scripts/brokers/cluster.sh).

The cluster is not part of scripts/brokers/up.sh: it costs half a minute to form and three
more RabbitMQ nodes, and only these tests use it. So the session starts it when it is not
running, and stops it again at the end if it did start it. When it cannot be started (RabbitMQ
not installed, a port taken) the tests skip, or fail in CI, where they are required
(tests/support/ci.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

import stompws

from ..support.ci import need
from . import support

LOGIN = "guest"
PASSCODE = "guest"

ClientFactory = Callable[..., stompws.Client]


@pytest.fixture(scope="session")
def _cluster_session() -> Iterator[None]:
    started_here = False
    if not support.is_running():
        try:
            support.run("start", timeout=support.START_TIMEOUT)
        except (support.ScriptError, OSError) as error:
            need(f"the RabbitMQ cluster of scripts/brokers/cluster.sh could not start: {error}")
        started_here = True
    yield
    if started_here:
        support.run("stop")


@pytest.fixture
def cluster(_cluster_session: None) -> None:
    """All three nodes running and joined: a node that an earlier test killed and did not
    bring back is revived (cluster.sh start is a no-op when the cluster is whole)."""
    try:
        support.run("start", timeout=support.START_TIMEOUT)
    except support.ScriptError as error:
        need(f"the RabbitMQ cluster is not whole and could not be repaired: {error}")


@pytest.fixture
def make_client() -> Iterator[ClientFactory]:
    """Makes a ``Client`` (a URL list first, then Client options); every client made is
    disconnected at teardown, before the leaked-thread check."""
    made: list[stompws.Client] = []

    def make(urls: Sequence[str], **options: Any) -> stompws.Client:
        options.setdefault("login", LOGIN)
        options.setdefault("passcode", PASSCODE)
        client = stompws.Client(list(urls), **options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.disconnect(timeout=5.0)
