"""What the fault-injection tests share besides fixtures: brokers, a timed event recorder,
and a check of the listener calls around connection attempts."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import stompws

from ..support import brokers as real
from ..waiting import wait_until

LOGIN = "guest"
PASSCODE = "guest"
WAIT = 10.0  # seconds for anything that should happen: a failure, never a slow pass


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


@dataclass(frozen=True)
class Event:
    name: str  # "connecting", "connected", "disconnected", "heartbeat_timeout", ...
    value: object
    at: float  # time.monotonic()
    thread: str


class Recorder(stompws.Listener):
    """Records the life-cycle events, timed, in order; any thread can wait for them."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.condition = threading.Condition()

    def _add(self, name: str, value: object = None) -> None:
        event = Event(name, value, time.monotonic(), threading.current_thread().name)
        with self.condition:
            self.events.append(event)
            self.condition.notify_all()

    def of(self, name: str) -> list[Event]:
        with self.condition:
            return [event for event in self.events if event.name == name]

    def names(self) -> list[str]:
        with self.condition:
            return [event.name for event in self.events if event.name != "heartbeat"]

    def wait_for(self, name: str, count: int = 1, timeout: float = WAIT) -> list[Event]:
        """The events called ``name`` once there are at least ``count`` of them."""
        try:
            return wait_until(
                self.condition,
                lambda: found if len(found := self.of(name)) >= count else None,
                f"{count} × {name}",
                timeout,
            )
        except AssertionError as error:
            # The events at the end of the wait, not at its start: they say what came instead.
            raise AssertionError(f"{error} (events: {self.names()})") from None

    def on_connecting(self, url: str) -> None:
        self._add("connecting", url)

    def on_connected(self, frame: stompws.Frame) -> None:
        self._add("connected", frame)

    def on_heartbeat(self) -> None:
        self._add("heartbeat")

    def on_heartbeat_timeout(self) -> None:
        self._add("heartbeat_timeout")

    def on_disconnected(self, reason: BaseException | None) -> None:
        self._add("disconnected", reason)

    def on_error(self, frame: stompws.Frame) -> None:
        self._add("error", frame)

    def on_listener_error(self, exc: BaseException, event: str) -> None:
        self._add("listener_error", (exc, event))


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


class Collector:
    """A subscription callback that keeps the message bodies and can wait for them;
    ``hook(frame)``, when given, runs first (on the reader thread)."""

    def __init__(self, hook: Callable[[stompws.Frame], None] | None = None) -> None:
        self.frames: list[stompws.Frame] = []
        self.condition = threading.Condition()
        self._hook = hook

    def __call__(self, frame: stompws.Frame) -> None:
        if self._hook is not None:
            self._hook(frame)
        with self.condition:
            self.frames.append(frame)
            self.condition.notify_all()

    @property
    def texts(self) -> list[str]:
        with self.condition:
            return [frame.text for frame in self.frames]

    def wait_for(self, count: int, timeout: float = WAIT) -> list[str]:
        return wait_until(
            self.condition,
            lambda: texts if len(texts := self.texts) >= count else None,
            f"{count} messages (got {self.texts})",
            timeout,
        )


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
