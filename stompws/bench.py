"""``stompws bench URL``: throughput and latency against any broker.

Producers and consumers each get their own ``Client`` (and so their own connection and
reader thread), all in this process. Consumers subscribe first, each confirmed by a
RECEIPT, so that a topic loses nothing to a late subscriber; then every producer sends its
messages as fast as it can or at ``rate`` messages per second. Each message carries the
moment it was sent (``time.monotonic_ns()``, meaningful because sender and receiver share
this process's clock) and a unique id, so the consumers measure send-to-receive latency
and notice lost or duplicated messages.

On a ``/topic/`` destination every consumer gets every message; on any other destination
(queues) each message goes to one consumer. A run that does not get every message it
expects fails with ``ReceiveTimeout`` once nothing has arrived for ``timeout`` seconds: a
benchmark that silently counted fewer messages would report a flattering rate.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from .client import Client
from .errors import BrokerError, ReceiveTimeout, UsageError
from .frame import Frame
from .listener import Listener

__all__ = [
    "BenchResult",
    "BenchSettings",
    "Progress",
    "add_bench_arguments",
    "percentile",
    "run_bench",
    "run_bench_command",
]

SENT_HEADER = "stompws-bench-sent"  # time.monotonic_ns() when the producer sent it
ID_HEADER = "stompws-bench-id"  # "<producer>-<n>", to spot duplicates


def default_destination() -> str:
    # A fresh name per run: brokers keep /queue/ destinations (RabbitMQ declares them
    # durable), and leftovers of an earlier run would be counted in this one.
    return f"/queue/stompws-bench-{uuid.uuid4().hex}"


@dataclass(frozen=True)
class BenchSettings:
    """What to run; ``messages`` is per producer."""

    url: str
    producers: int = 1
    consumers: int = 1
    messages: int = 1000
    size: int = 100
    destination: str = field(default_factory=default_destination)
    rate: float = 0.0  # messages per second per producer; 0: as fast as possible
    heartbeats: tuple[int, int] = (0, 0)
    login: str | None = None
    passcode: str | None = field(default=None, repr=False)
    host: str | None = None
    connect_timeout: float = 10.0
    timeout: float = 30.0  # give up when nothing arrived for this long

    def __post_init__(self) -> None:
        checks = [
            (self.producers >= 1, f"--producers must be at least 1, not {self.producers}"),
            (self.consumers >= 0, f"--consumers must be 0 or more, not {self.consumers}"),
            (self.messages >= 1, f"--messages must be at least 1, not {self.messages}"),
            (self.size >= 0, f"--size must be 0 or more, not {self.size}"),
            (self.rate >= 0, f"--rate must be 0 (unlimited) or more, not {self.rate}"),
            (self.timeout > 0, f"--timeout must be more than 0, not {self.timeout}"),
        ]
        for ok, message in checks:
            if not ok:
                raise UsageError(message)

    @property
    def fan_out(self) -> bool:
        """Whether every consumer gets every message (a topic) rather than one each."""
        return self.destination.startswith("/topic/")

    @property
    def total_sent(self) -> int:
        return self.producers * self.messages

    @property
    def expected(self) -> int:
        """How many deliveries the consumers should see in all."""
        if self.consumers == 0:
            return 0
        return self.total_sent * (self.consumers if self.fan_out else 1)

    def client(self) -> Client:
        return Client(
            self.url,
            login=self.login,
            passcode=self.passcode,
            host=self.host,
            heartbeats=self.heartbeats,
            connect_timeout=self.connect_timeout,
        )


def percentile(ordered: list[float], fraction: float) -> float:
    """The nearest-rank percentile of an ascending, non-empty list (fraction in 0..1)."""
    # The small margin keeps float error (0.07 * 100 = 7.000000000000001) from moving the
    # rank up by one.
    rank = max(1, math.ceil(len(ordered) * fraction - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True)
class BenchResult:
    settings: BenchSettings
    url: str  # without credentials
    version: str | None
    sent: int
    received: int
    duplicates: int
    send_seconds: float  # from the start until the last producer finished
    receive_seconds: float  # from the start until the last expected message arrived
    latencies: list[float]  # seconds, ascending

    def lines(self) -> list[str]:
        """The report, one line each, as the command prints it."""
        s = self.settings
        out = [
            f"{s.producers} producer(s), {s.consumers} consumer(s), {s.messages} message(s) "
            f"of {s.size} bytes each, {s.destination} on {self.url} (STOMP {self.version})",
            f"sent {self.sent} messages in {self.send_seconds:.3f} s: "
            f"{_rate(self.sent, self.send_seconds)} msgs/s",
        ]
        if s.consumers:
            megabytes = self.received * s.size / 1e6
            out.append(
                f"received {self.received} of {s.expected} messages in "
                f"{self.receive_seconds:.3f} s: {_rate(self.received, self.receive_seconds)} "
                f"msgs/s, {megabytes / max(self.receive_seconds, 1e-9):.2f} MB/s"
            )
        if self.latencies:
            p50, p99 = percentile(self.latencies, 0.5), percentile(self.latencies, 0.99)
            out.append(
                f"latency p50 {p50 * 1e3:.2f} ms, p99 {p99 * 1e3:.2f} ms, "
                f"max {self.latencies[-1] * 1e3:.2f} ms"
            )
        if self.duplicates:
            out.append(f"duplicates: {self.duplicates} message(s) arrived twice at a consumer")
        return out


def _rate(count: int, seconds: float) -> str:
    return f"{count / seconds:.0f}" if seconds > 0 else "-"


class _Tally:
    """What the consumers saw, shared between their reader threads and the main thread."""

    def __init__(self) -> None:
        self.condition = threading.Condition()
        self.received = 0
        self.duplicates = 0
        self.latencies: list[float] = []
        self.last_arrival = 0.0  # time.monotonic() of the latest message
        self.failure: BaseException | None = None

    def fail(self, error: BaseException) -> None:
        with self.condition:
            if self.failure is None:
                self.failure = error
            self.condition.notify_all()


class _Consumer(Listener):
    """One consumer's callback and listener: counts, checks and times its messages."""

    def __init__(self, tally: _Tally) -> None:
        self._tally = tally
        self._seen: set[str] = set()  # only this consumer's reader thread touches it

    def message(self, frame: Frame) -> None:
        now = time.monotonic_ns()
        sent = frame.headers.get(SENT_HEADER, "")
        ident = frame.headers.get(ID_HEADER, "")
        duplicate = ident in self._seen
        self._seen.add(ident)
        tally = self._tally
        with tally.condition:
            if duplicate:
                tally.duplicates += 1
            else:
                tally.received += 1
            if sent.isdigit():
                tally.latencies.append((now - int(sent)) / 1e9)
            tally.last_arrival = time.monotonic()
            tally.condition.notify_all()

    def on_error(self, frame: Frame) -> None:
        self._tally.fail(BrokerError(frame))

    def on_disconnected(self, reason: BaseException | None) -> None:
        if reason is not None:
            self._tally.fail(reason)


class Progress:
    """A one-line progress bar on a terminal; nothing at all when ``stream`` is not one
    (a log file or a pipe would fill up with carriage returns)."""

    WIDTH = 30

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty()
        self._drawn = False

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total <= 0:
            return
        filled = self.WIDTH * done // total
        bar = "#" * filled + "." * (self.WIDTH - filled)
        self.stream.write(f"\r[{bar}] {done}/{total} {100 * done // total:3d}%")
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False


def _produce(
    client: Client,
    number: int,
    settings: BenchSettings,
    go: threading.Event,
    stop: threading.Event,
    sent: list[int],
    tally: _Tally,
) -> None:
    body = b"x" * settings.size
    interval = 1.0 / settings.rate if settings.rate else 0.0
    try:
        go.wait()
        started = time.monotonic()
        for n in range(settings.messages):
            if stop.is_set():
                return
            if interval:
                # Pacing, not synchronisation: wait for this message's slot, but wake at
                # once when the run is called off.
                due = started + n * interval
                delay = due - time.monotonic()
                if delay > 0 and stop.wait(delay):
                    return
            client.send(
                settings.destination,
                body,
                headers={
                    SENT_HEADER: str(time.monotonic_ns()),
                    ID_HEADER: f"{number}-{n}",
                },
            )
            sent[number] += 1
    except Exception as error:  # reported by the main thread, which re-raises it
        tally.fail(error)


def run_bench(
    settings: BenchSettings, *, progress: Callable[[int, int], None] | None = None
) -> BenchResult:
    """Run the benchmark; raises a ``StompError`` when it cannot finish (see the module)."""
    tally = _Tally()
    consumers: list[Client] = []
    producers: list[Client] = []
    threads: list[threading.Thread] = []
    go, stop = threading.Event(), threading.Event()
    sent = [0] * settings.producers
    try:
        for _ in range(settings.consumers):
            client = settings.client()
            consumers.append(client)
            consumer = _Consumer(tally)
            client.add_listener(consumer)
            client.connect()
            client.subscribe(settings.destination, callback=consumer.message, receipt=True)
        for number in range(settings.producers):
            client = settings.client()
            producers.append(client)
            client.connect()
            thread = threading.Thread(
                target=_produce,
                args=(client, number, settings, go, stop, sent, tally),
                name=f"stompws-bench-producer-{number}",
                daemon=True,
            )
            threads.append(thread)
            thread.start()
        url, version = producers[0].url, producers[0].version
        started = time.monotonic()
        with tally.condition:
            tally.last_arrival = started
        go.set()
        all_sent = _wait_for_producers(threads, tally, settings, sent, progress)
        all_received = _wait_for_consumers(tally, settings, started, progress)
        with tally.condition:
            latencies = sorted(tally.latencies)
            received, duplicates = tally.received, tally.duplicates
        return BenchResult(
            settings=settings,
            url=url,
            version=version,
            sent=sum(sent),
            received=received,
            duplicates=duplicates,
            send_seconds=all_sent - started,
            receive_seconds=all_received - started,
            latencies=latencies,
        )
    finally:
        stop.set()
        go.set()  # producers still waiting for the start leave at once
        for client in producers + consumers:
            client.disconnect(timeout=5.0)
        for thread in threads:
            thread.join(5.0)


def _wait_for_producers(
    threads: list[threading.Thread],
    tally: _Tally,
    settings: BenchSettings,
    sent: list[int],
    progress: Callable[[int, int], None] | None,
) -> float:
    """Wait until every producer has sent everything; the time the last one finished."""
    for thread in threads:
        while thread.is_alive():
            thread.join(0.1)  # wakes to draw progress and to notice a failure
            with tally.condition:
                if tally.failure is not None:
                    raise tally.failure
            if progress is not None:
                if settings.consumers:
                    progress(tally.received, settings.expected)
                else:
                    progress(sum(sent), settings.total_sent)
    with tally.condition:
        if tally.failure is not None:
            raise tally.failure
    return time.monotonic()


def _wait_for_consumers(
    tally: _Tally,
    settings: BenchSettings,
    started: float,
    progress: Callable[[int, int], None] | None,
) -> float:
    """Wait until every expected message arrived; the time the last one did."""
    expected = settings.expected
    with tally.condition:
        while tally.received < expected:
            if tally.failure is not None:
                raise tally.failure
            silent_until = tally.last_arrival + settings.timeout
            remaining = silent_until - time.monotonic()
            if remaining <= 0:
                raise ReceiveTimeout(
                    f"only {tally.received} of {expected} messages arrived; none for "
                    f"{settings.timeout:g} s (--timeout)"
                )
            if progress is not None:
                progress(tally.received, expected)
            tally.condition.wait(min(remaining, 0.1) if progress is not None else remaining)
        if progress is not None:
            progress(tally.received, expected)
        return tally.last_arrival if expected else started


# -- the command line ------------------------------------------------------------------------


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``bench`` subcommand's arguments (the connection options as send/subscribe)."""
    parser.add_argument("url", help="ws://, wss://, stomp:// or stomp+ssl:// URL of the broker")
    parser.add_argument("--producers", type=int, default=1, metavar="N", help="default 1")
    parser.add_argument(
        "--consumers", type=int, default=1, metavar="N", help="default 1; 0: only send"
    )
    parser.add_argument(
        "--messages", type=int, default=1000, metavar="N", help="per producer (default 1000)"
    )
    parser.add_argument(
        "--size", type=int, default=100, metavar="BYTES", help="body size (default 100)"
    )
    parser.add_argument(
        "--destination",
        metavar="DEST",
        help="default: a new /queue/stompws-bench-<uuid> (brokers keep it afterwards); "
        "on a /topic/ every consumer gets every message",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        metavar="N",
        help="messages per second per producer (default 0: as fast as possible)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="fail when no message arrived for S seconds (default 30)",
    )
    parser.add_argument("--login", help="login (default: from the URL or $STOMPWS_LOGIN)")
    parser.add_argument("--passcode", help="passcode (default: the URL or $STOMPWS_PASSCODE)")
    parser.add_argument("--host", help="the STOMP host header (a virtual host)")
    parser.add_argument(
        "--heartbeats",
        default="0,0",
        metavar="CX,CY",
        help="in ms (default 0,0: a loaded RabbitMQ Web STOMP can drop connections that "
        "heart-beat)",
    )
    parser.add_argument(
        "--connect-timeout", type=float, default=10.0, metavar="S", help="seconds (default 10)"
    )
    parser.add_argument("--debug", action="store_true", help="log at DEBUG and show tracebacks")


def settings_from_args(args: argparse.Namespace) -> BenchSettings:
    try:
        send_ms, receive_ms = (int(part) for part in args.heartbeats.split(","))
    except ValueError:
        raise UsageError(f"--heartbeats takes CX,CY in ms, not {args.heartbeats!r}") from None
    return BenchSettings(
        url=args.url,
        producers=args.producers,
        consumers=args.consumers,
        messages=args.messages,
        size=args.size,
        destination=args.destination or default_destination(),
        rate=args.rate,
        heartbeats=(send_ms, receive_ms),
        login=args.login or os.environ.get("STOMPWS_LOGIN"),
        passcode=args.passcode or os.environ.get("STOMPWS_PASSCODE"),
        host=args.host,
        connect_timeout=args.connect_timeout,
        timeout=args.timeout,
    )


def run_bench_command(args: argparse.Namespace) -> int:
    """Run ``stompws bench`` as parsed; errors propagate for the caller's exit codes."""
    settings = settings_from_args(args)
    progress = Progress()
    try:
        result = run_bench(settings, progress=progress if progress.enabled else None)
    finally:
        progress.close()
    for line in result.lines():
        print(line, flush=True)
    return 0
