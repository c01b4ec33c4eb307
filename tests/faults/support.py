"""What the fault-injection tests share besides fixtures: brokers and a check of the
listener calls around connection attempts (the recorder is tests/support/recording.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import stompws

from ..support import brokers as real
from ..support.recording import WAIT as WAIT  # the tests' one bound, re-exported

LOGIN = "guest"
PASSCODE = "guest"


@dataclass(frozen=True)
class Broker:
    name: str
    url: str
    host: str
    port: int

    @property
    def websocket(self) -> bool:
        return self.url.startswith("ws")


BROKERS = {
    broker.name: broker
    for broker in (
        Broker("rabbitmq-tcp", real.RABBITMQ_TCP_URL, real.HOST, real.RABBITMQ_STOMP_PORT),
        Broker("rabbitmq-ws", real.RABBITMQ_WS_URL, real.HOST, real.RABBITMQ_WS_PORT),
        Broker("activemq-tcp", real.ACTIVEMQ_TCP_URL, real.HOST, real.ACTIVEMQ_STOMP_PORT),
    )
}


def new_queue(tag: str = "faults") -> str:
    """A queue name never used before (queues outlive the test on both brokers)."""
    return real.new_queue(tag)


def receive_interval(connected: stompws.Frame, cy: int) -> float:
    """Seconds between the broker's heart-beats as negotiated: max(sx, cy), from CONNECTED."""
    sx = int(connected.headers.get("heart-beat", "0,0").split(",")[0])
    if sx == 0 or cy == 0:
        return 0.0
    return max(sx, cy) / 1000


def check_attempts(names: Sequence[str]) -> tuple[int, int]:
    """Check that every connect attempt got ``on_connecting`` and then exactly one of
    ``on_connected`` or ``on_disconnected`` (a failed attempt), and every connection that
    was established exactly one ``on_disconnected``. Returns (attempts, established).

    ``heartbeat_timeout`` may come only on an established connection, before its end.
    """
    attempts = established = 0
    state = "idle"  # "idle" -> "attempt" -> ("idle" | "up" -> "idle")
    timed_out = False
    for position, name in enumerate(names):
        where = f"event {position} in {list(names)}"
        if name == "connecting":
            assert state == "idle", f"connecting during {state}: {where}"
            attempts += 1
            state = "attempt"
        elif name == "connected":
            assert state == "attempt", f"connected during {state}: {where}"
            established += 1
            state = "up"
            timed_out = False
        elif name == "heartbeat_timeout":
            assert state == "up" and not timed_out, f"heartbeat_timeout during {state}: {where}"
            timed_out = True
        elif name == "disconnected":
            assert state in ("attempt", "up"), f"disconnected during {state}: {where}"
            state = "idle"
    assert state == "idle", f"the last connection has no on_disconnected: {list(names)}"
    return attempts, established


def safe_tolerance(broker: Broker) -> float:
    """The heart-beat tolerance for tests about something else than ActiveMQ's heart-beat
    schedule: after it writes a frame, ActiveMQ may stay silent for 2 intervals and a few
    ms, just past the default tolerance (2); test_no_false_timeout_after_the_broker_writes
    and test_two_intervals_of_silence_after_a_receipt_is_no_loss show it."""
    return 3.0 if broker.name.startswith("activemq") else 2.0


def prefetch(broker: Broker, count: int) -> dict[str, str]:
    """The SUBSCRIBE header that bounds unacknowledged deliveries on this broker."""
    if broker.name.startswith("activemq"):
        return {"activemq.prefetchSize": str(count)}
    return {"prefetch-count": str(count)}
