"""The one listener that records what a client tells it, and the one subscription callback
that keeps what arrives: timed, with the thread each came on, and waitable from any thread.

Suites with a listener of their own keep it only when it does something else than record
(tests/compat's records stomp.py's callback shapes; test_model's acts on the client).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import stompws

from ..waiting import wait_until

WAIT = 10.0  # seconds for anything that should happen: a failure, never a slow pass


@dataclass(frozen=True)
class Event:
    name: str  # the callback without "on_": "connecting", "connected", "heartbeat", ...
    value: Any  # its argument; (exc, event) for listener_error; None when it has none
    at: float  # time.monotonic()
    thread: str


class Recorder(stompws.Listener):
    """Records every listener call but ``on_send``, in order, timed, with its thread.

    ``on_send`` is left out: it would interleave every outgoing frame with the events the
    tests are about, and no test needs it.
    """

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.condition = threading.Condition()

    def _add(self, name: str, value: Any = None) -> None:
        event = Event(name, value, time.monotonic(), threading.current_thread().name)
        with self.condition:
            self.events.append(event)
            self.condition.notify_all()

    def events_of(self, name: str) -> list[Event]:
        with self.condition:
            return [event for event in self.events if event.name == name]

    def of(self, name: str) -> list[Any]:
        """The values of the events called ``name``."""
        return [event.value for event in self.events_of(name)]

    def times_of(self, name: str) -> list[float]:
        return [event.at for event in self.events_of(name)]

    def names(self) -> list[str]:
        """The event names in order, heart-beats left out: they come at the peer's pace, and
        an order asserted on the rest would otherwise depend on it."""
        with self.condition:
            return [event.name for event in self.events if event.name != "heartbeat"]

    def wait_for(self, name: str, count: int = 1, timeout: float = WAIT) -> list[Any]:
        """The values of the events called ``name`` once there are at least ``count``."""
        return [event.value for event in self.wait_for_events(name, count, timeout)]

    def wait_for_events(self, name: str, count: int = 1, timeout: float = WAIT) -> list[Event]:
        try:
            return wait_until(
                self.condition,
                lambda: found if len(found := self.events_of(name)) >= count else None,
                f"{count} × {name}",
                timeout,
            )
        except AssertionError as error:
            # The events at the end of the wait, not at its start: they say what came instead.
            raise AssertionError(f"{error} (events: {self.names()})") from None

    def wait_past(self, name: str, since: float, seconds: float, timeout: float) -> list[float]:
        """The times of event ``name`` once one came ``seconds`` or more after ``since``: a
        window that ends on an event, so that what did not happen in it is proven."""

        def past() -> list[float] | None:
            found = self.times_of(name)
            return found if found and found[-1] >= since + seconds else None

        return wait_until(self.condition, past, f"{name} {seconds:g} s after the start", timeout)

    def on_connecting(self, url: str) -> None:
        self._add("connecting", url)

    def on_connected(self, frame: stompws.Frame) -> None:
        self._add("connected", frame)

    def on_message(self, frame: stompws.Frame) -> None:
        self._add("message", frame)

    def on_receipt(self, frame: stompws.Frame) -> None:
        self._add("receipt", frame)

    def on_error(self, frame: stompws.Frame) -> None:
        self._add("error", frame)

    def on_heartbeat(self) -> None:
        self._add("heartbeat")

    def on_heartbeat_timeout(self) -> None:
        self._add("heartbeat_timeout")

    def on_disconnected(self, reason: BaseException | None) -> None:
        self._add("disconnected", reason)

    def on_listener_error(self, exc: BaseException, event: str) -> None:
        self._add("listener_error", (exc, event))


class Collector:
    """A subscription callback that keeps the frames and the threads they came on, and can
    wait for a number of them; ``hook(frame)``, when given, runs first (on the caller's
    thread, before the frame counts as arrived)."""

    def __init__(self, hook: Callable[[stompws.Frame], None] | None = None) -> None:
        self.frames: list[stompws.Frame] = []
        self.threads: set[str] = set()
        self.condition = threading.Condition()
        self._hook = hook

    def __call__(self, frame: stompws.Frame) -> None:
        if self._hook is not None:
            self._hook(frame)
        with self.condition:
            self.frames.append(frame)
            self.threads.add(threading.current_thread().name)
            self.condition.notify_all()

    @property
    def texts(self) -> list[str]:
        with self.condition:
            return [frame.text for frame in self.frames]

    def wait_for(self, count: int, timeout: float = WAIT) -> list[stompws.Frame]:
        try:
            return wait_until(
                self.condition,
                lambda: list(self.frames) if len(self.frames) >= count else None,
                f"{count} messages",
                timeout,
            )
        except AssertionError as error:
            # How many did come tells a slow broker from a lost or duplicated frame.
            with self.condition:
                arrived = len(self.frames)
            raise AssertionError(f"{error}: {arrived} arrived") from None
