"""Fixtures for the integration tests against the real brokers of scripts/brokers/up.sh.

Every test that talks to a broker takes the ``target`` fixture: one broker endpoint and one
STOMP version, with ids such as ``rabbitmq-ws-1.2``. A test that only makes sense on some of
them narrows it with ``@pytest.mark.parametrize("target", targets(...), indirect=True)``.

Each broker is probed once per session (a TCP connect, 2 s). One that does not answer skips
its tests, or fails them when the ``CI`` environment variable is set: in CI the brokers are
required.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

import stompws
from stompws.testing import Broker as EmbeddedBroker

from ..support import brokers as real
from ..support.ci import need
from ..support.embedded import package_broker
from .support import (
    BROKERS,
    LOGIN,
    PASSCODE,
    WAIT,
    Broker,
    Target,
    embedded,
    new_queue,
    targets,
)

ClientFactory = Callable[..., stompws.Client]


def _probe(broker: Broker) -> str | None:
    return real.probe(broker.name, broker.host, broker.port)


# The project's own broker, one more in the parametrization of every test.
embedded_broker = package_broker("embedded_broker", users={LOGIN: PASSCODE})


@pytest.fixture(scope="package")
def live_brokers(embedded_broker: EmbeddedBroker) -> dict[str, Broker]:
    """BROKERS with the embedded broker's entries on the ports it is listening on."""
    ports = {"ws": embedded_broker.ws_port, "tcp": embedded_broker.tcp_port}
    return {
        name: embedded(broker.transport, ports[broker.transport])
        if broker.vendor == "embedded"
        else broker
        for name, broker in BROKERS.items()
    }


@pytest.fixture(scope="package")
def broker_problems(live_brokers: dict[str, Broker]) -> dict[str, str | None]:
    """Each broker probed once, when the first integration test starts."""
    return {name: _probe(broker) for name, broker in live_brokers.items()}


@pytest.fixture(params=targets())
def target(
    request: pytest.FixtureRequest,
    live_brokers: dict[str, Broker],
    broker_problems: dict[str, str | None],
) -> Target:
    chosen: Target = request.param
    problem = broker_problems[chosen.broker.name]
    if problem is not None:
        need(problem)
    return dataclasses.replace(chosen, broker=live_brokers[chosen.broker.name])


@pytest.fixture
def queue() -> str:
    return new_queue()


@pytest.fixture
def make_client(target: Target) -> Iterator[ClientFactory]:
    """Makes a Client for the target that offers only the target's version (``url=`` for
    another way to it, e.g. through a proxy).

    ``connect=True`` (the default) connects it and checks the negotiated version
    (``versions=`` may override the offer, e.g. a 1.2 producer for a 1.0 consumer). Every
    client made is disconnected at teardown, before the leaked-thread check.
    """
    made: list[stompws.Client] = []

    def make(
        *,
        connect: bool = True,
        listeners: Sequence[stompws.Listener] = (),
        url: str | None = None,
        **options: Any,
    ) -> stompws.Client:
        options.setdefault("login", LOGIN)
        options.setdefault("passcode", PASSCODE)
        options.setdefault("versions", [target.version])
        client = stompws.Client(url or target.url, **options)
        made.append(client)
        for listener in listeners:
            client.add_listener(listener)
        if connect:
            client.connect(timeout=WAIT)
            assert client.version == max(options["versions"])  # brokers pick the highest
        return client

    yield make
    for client in made:
        client.disconnect(timeout=5.0)


@pytest.fixture
def client(make_client: ClientFactory) -> stompws.Client:
    """A connected client with the default heart-beats."""
    return make_client()


@pytest.fixture
def fast_client(make_client: ClientFactory) -> stompws.Client:
    """A connected client with heart-beats off, for tests that send many messages:
    RabbitMQ 3.10's Web STOMP heart-beat monitor can crash a loaded connection."""
    return make_client(heartbeats=(0, 0))
