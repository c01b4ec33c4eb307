"""Heart-beats with the real brokers: an idle connection must stay up in both directions."""

from __future__ import annotations

import itertools

import pytest

from ..support.recording import Recorder
from .conftest import ClientFactory
from .support import targets

pytestmark = pytest.mark.brokers

IDLE = 2.2  # seconds: several heart-beat intervals of both sides
# RabbitMQ drops a client silent for 3 of the intervals it negotiated (1 s here): watching
# for longer than that, until a broker heart-beat past it, proves that ours went out.
RABBITMQ_WATCH = 4.0


@pytest.mark.parametrize("target", targets(brokers=["rabbitmq"], versions=["1.2"]), indirect=True)
def test_idle_connection_with_heartbeats_stays_up(make_client: ClientFactory) -> None:
    # We offer 500 ms both ways; RabbitMQ raises that to 1000 ms, sends a heart-beat every
    # interval (WebSocket) or half interval (TCP), and drops a client whose heart-beats
    # stop for a few of the intervals it declared: staying up proves ours go out.
    recorder = Recorder()
    client = make_client(heartbeats=(500, 500), listeners=[recorder])
    (connected_at,) = recorder.times_of("connected")

    # Idle on purpose, until a broker heart-beat comes after RabbitMQ's limit; then a
    # RECEIPT, the sentinel that the broker still has us (a dropped client gets none).
    beats = recorder.wait_past("heartbeat", connected_at, RABBITMQ_WATCH, RABBITMQ_WATCH + 5)
    receipt = client.send("/queue/stompws-it-heartbeat-sentinel", "x", receipt=True)
    assert receipt is not None
    receipt.wait(5.0)

    assert recorder.of("heartbeat_timeout") == []
    assert recorder.of("disconnected") == []
    assert client.is_connected
    assert len(beats) >= 3


@pytest.mark.parametrize("target", targets(brokers=["activemq"], versions=["1.2"]), indirect=True)
def test_activemq_idle_connection_survives_the_default_tolerance(
    make_client: ClientFactory,
) -> None:
    # Broker quirk: ActiveMQ agrees to 500 ms but sends its first heart-beat only after
    # twice the interval (its inactivity monitor skips a check period that saw a write):
    # exactly the default tolerance. The client grants one more interval before the first
    # beat after CONNECTED (stompws.protocol.ClientProtocol.silence_deadline); later gaps
    # are one interval.
    recorder = Recorder()
    client = make_client(heartbeats=(500, 500), listeners=[recorder])
    (connected_at,) = recorder.times_of("connected")

    # Idle on purpose: we watch the broker's heart-beats until one comes IDLE s in; a false
    # timeout before then would have ended the connection and the beats with it.
    recorder.wait_past("heartbeat", connected_at, IDLE, IDLE + 5)

    assert client.is_connected
    assert recorder.of("heartbeat_timeout") == []
    beats = [connected_at, *recorder.times_of("heartbeat")]
    assert len(beats) >= 3
    later_gaps = [b - a for a, b in itertools.pairwise(beats[1:])]
    assert max(later_gaps) < 0.5 * 2 * 0.9, later_gaps  # steady state: well inside 2 x 500 ms
