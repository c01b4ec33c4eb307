"""The measured process of the soak (benchmarks/soak.py starts it): steady traffic through
stompws clients, and a sample of this process's RSS, fds and threads every few seconds.

It holds nothing but the clients and their traffic, so what it measures is theirs: the
broker and the fault proxies that cut the connections run in the parent process.

One *lane* per URL (the parent gives one WebSocket and one TCP URL, each through its own
proxy), each with two connections, both with ``Reconnect`` and heart-beats on:

* the producer sends, at a steady ``--rate`` per second, message ``n`` to two queues and one
  tick to a topic. Queue messages go with a receipt; a thread waits for the receipts in
  order, and a message whose receipt failed (the connection was cut under it) is sent again,
  so every message is confirmed in the end, some more than once.
* the consumer reads one queue with ``client-individual`` acks (a callback that acks each
  message) and the other with ``client`` acks (a thread that reads with ``get()`` and acks
  every ``ACK_EVERY`` messages, cumulatively). A third thread churns: it subscribes to the
  topic, reads for ``--churn-every`` seconds, unsubscribes, and again.

After ``--seconds`` the producer stops and the worker drains: it resends until every
message is confirmed, waits until every confirmed message arrived, disconnects, and prints a
summary. Output on stdout is one JSON object per line (``ready``, ``sample``, ``summary``);
anything else goes to stderr.

Every call to the client is timed against the bound its documentation promises
(soak_ledger.CallLog): a call past it, or one that gave up at its own deadline, is what the
soak calls a call exceeding its timeout.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import ctypes
import gc
import json
import os
import queue
import sys
import threading
import time
import traceback
import tracemalloc
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[1]
# The client of this checkout, whatever else is installed: the soak judges this tree's.
sys.path.insert(0, str(REPO))

from soak_ledger import GRACE, CallLog, SeqSet, Window, percentile  # noqa: E402

import stompws  # noqa: E402

T = TypeVar("T")

SEQ = "soak-seq"
SENT = "soak-sent"  # time.monotonic_ns() of this send: latency is measured in one process
QUEUES = ("individual", "client")  # the ack mode of the subscription reading each queue
BODY = b"s" * 256
ACK_EVERY = 20  # client-mode acks: one per this many messages (or per ACK_PERIOD)
ACK_PERIOD = 0.5
GET_TIMEOUT = 0.2  # seconds a reading thread waits in get() before looking at its flags
PREFETCH = "100"  # unacked deliveries per subscription (RabbitMQ's and the embedded broker's)
JOIN = 30.0  # seconds a harness thread may take to end once told to
NOTES_KEPT = 20


@dataclass(frozen=True)
class Settings:
    seconds: float
    sample_every: float
    rate: float
    heartbeat_ms: int
    heartbeat_tolerance: float
    churn_every: float
    drain_timeout: float
    connect_timeout: float
    write_timeout: float
    receipt_timeout: float
    trace_memory: bool = False

    @property
    def write_bound(self) -> float:
        """What a call that writes one frame may take: waiting for a reconnect under way
        (``connect_timeout``) and then the write (``write_timeout``)."""
        return self.connect_timeout + self.write_timeout


class Harness:
    """What every lane shares: the call log, the window, the flags and the output."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.calls = CallLog()
        self.window = Window()
        self.stop = threading.Event()  # no new messages
        self.drained = threading.Event()  # no more reading either
        self.failures: list[str] = []  # harness threads that died, listeners that raised
        self.notes: list[str] = []
        self.began = time.monotonic()
        self._output = threading.Lock()

    def note(self, text: str) -> None:
        """Something odd but not a failure by itself (an ERROR frame, a loss that was not
        the cut): kept for the summary, the first ``NOTES_KEPT``."""
        if len(self.notes) < NOTES_KEPT:
            self.notes.append(f"{time.monotonic() - self.began:.1f} s: {text}")

    def emit(self, **fields: object) -> None:
        with self._output:
            sys.stdout.write(json.dumps(fields) + "\n")
            sys.stdout.flush()

    def call(self, kind: str, bound: float, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)``, timed against ``bound`` (soak_ledger.CallLog)."""
        started = time.monotonic()
        error: BaseException | None = None
        try:
            return function(*args)
        except BaseException as raised:
            error = raised
            expected = (stompws.HeartbeatTimeout, stompws.ReceiveTimeout)
            if isinstance(raised, TimeoutError) and not isinstance(raised, expected):
                # A heart-beat timeout is a lost connection (counted with the losses), and
                # get() timing out is how a reader looks up from an empty queue.
                self.calls.timed_out(kind, raised)
            raise
        finally:
            self.calls.record(kind, time.monotonic() - started, bound, error)

    def thread(self, name: str, target: Callable[[], None]) -> threading.Thread:
        def run() -> None:
            try:
                target()
            except BaseException:
                self.failures.append(f"{name} died:\n{traceback.format_exc()}")
                self.stop.set()

        # Daemon: a thread stuck in a client call must not keep the worker from reporting.
        thread = threading.Thread(target=run, name=f"soak-{name}", daemon=True)
        thread.start()
        return thread


class Watch(stompws.Listener):
    """Counts one client's connections and what ended them."""

    def __init__(self, harness: Harness, name: str) -> None:
        self.harness = harness
        self.name = name
        self.connected = 0
        self.losses: collections.Counter[str] = collections.Counter()

    def on_connected(self, frame: stompws.Frame) -> None:
        self.connected += 1

    def on_disconnected(self, reason: BaseException | None) -> None:
        if reason is not None:
            self.losses[type(reason).__name__] += 1
            if type(reason) is not stompws.ConnectionClosed:
                self.harness.note(f"{self.name}: connection ended by {reason!r}")

    def on_error(self, frame: stompws.Frame) -> None:
        self.harness.note(f"{self.name}: ERROR {dict(frame.headers)} {frame.body[:300]!r}")

    def on_listener_error(self, exc: BaseException, event: str) -> None:
        self.harness.failures.append(f"{self.name}: a callback raised in {event}: {exc!r}")


class Lane:
    """A producer and a consumer connection on one URL, and their traffic."""

    def __init__(self, harness: Harness, name: str, url: str, tag: str) -> None:
        self.harness = harness
        self.settings = harness.settings
        self.name = name
        self.queues = {kind: f"/queue/stompws-soak-{tag}-{name}-{kind}" for kind in QUEUES}
        self.topic = f"/topic/stompws-soak-{tag}-{name}-churn"
        self.producer, self.producer_watch = self._client(url, f"{name}-producer")
        self.consumer, self.consumer_watch = self._client(url, f"{name}-consumer")
        self.confirmed = {kind: SeqSet() for kind in QUEUES}
        self.received = {kind: SeqSet() for kind in QUEUES}
        self.duplicates = dict.fromkeys(QUEUES, 0)  # each written by one thread only
        self.ticks = 0  # messages sent to each queue (their seqs are 0 .. ticks - 1)
        self.resent = 0
        self.refused_acks = 0  # acks of a delivery from a connection already lost
        self.topic_delivered = 0
        self.churns = 0
        self.unsubscribe_retries = 0
        self._resend: collections.deque[tuple[str, int]] = collections.deque()
        # Bounded: a producer running ahead of stalled receipts waits here, and a wait
        # past the receipt timeout counts as a call past its timeout.
        self._pending: queue.Queue[tuple[str, int, stompws.Receipt]] = queue.Queue(4096)
        self._produced = threading.Event()  # the producer is done, drain included
        self._threads: list[threading.Thread] = []
        self._individual: stompws.Subscription | None = None
        self._cumulative: stompws.Subscription | None = None

    def _client(self, url: str, name: str) -> tuple[stompws.Client, Watch]:
        s = self.settings
        client = stompws.Client(
            url,
            login="guest",
            passcode="guest",
            heartbeats=(s.heartbeat_ms, s.heartbeat_ms),
            heartbeat_tolerance=s.heartbeat_tolerance,
            reconnect=stompws.Reconnect(initial=0.1, maximum=2.0),
            connect_timeout=s.connect_timeout,
            write_timeout=s.write_timeout,
            receipt_timeout=s.receipt_timeout,
        )
        watch = Watch(self.harness, name)
        client.add_listener(watch)
        return client, watch

    # -- start and end -----------------------------------------------------------------------

    def open(self) -> None:
        h, s = self.harness, self.settings
        subscribe_bound = s.write_bound + s.receipt_timeout
        for client in (self.producer, self.consumer):
            h.call("connect", s.connect_timeout, client.connect)
        headers = {"prefetch-count": PREFETCH}
        self._individual = h.call(
            "subscribe",
            subscribe_bound,
            lambda: self.consumer.subscribe(
                self.queues["individual"],
                ack="client-individual",
                headers=headers,
                callback=self._on_individual,
                receipt=True,
            ),
        )
        self._cumulative = h.call(
            "subscribe",
            subscribe_bound,
            lambda: self.consumer.subscribe(
                self.queues["client"], ack="client", headers=headers, receipt=True
            ),
        )

    def start(self) -> None:
        h = self.harness
        self._threads = [
            h.thread(f"{self.name}-produce", self._produce),
            h.thread(f"{self.name}-confirm", self._confirm),
            h.thread(f"{self.name}-consume", self._consume_cumulative),
            h.thread(f"{self.name}-churn", self._churn),
        ]

    def wait_confirmed(self, deadline: float) -> None:
        self._produced.wait(max(deadline - time.monotonic(), 0.0))

    def all_received(self) -> bool:
        return all(self.received[kind].floor >= self.ticks for kind in QUEUES)

    def close(self) -> list[str]:
        """Join the harness threads and disconnect; what did not end in time."""
        stuck = []
        for thread in self._threads:
            thread.join(JOIN)
            if thread.is_alive():
                stuck.append(thread.name)
        for client in (self.consumer, self.producer):
            try:
                self.harness.call("disconnect", 5.0, client.disconnect, 5.0)
            except stompws.StompError as error:
                self.harness.failures.append(f"{self.name}: disconnect raised {error!r}")
        return stuck

    def describe(self) -> str:
        return (
            f"{self.name}: producer {self.producer!r}, consumer {self.consumer!r} with "
            f"{[(sub.id, sub.destination) for sub in self.consumer.subscriptions]}; received "
            + ", ".join(
                f"{kind} {self.received[kind].count} of {self.ticks} "
                f"(confirmed {self.confirmed[kind].count})"
                for kind in QUEUES
            )
        )

    def summary(self) -> dict[str, object]:
        lost = {
            kind: sum(
                1
                for seq in range(self.ticks)
                if seq in self.confirmed[kind] and seq not in self.received[kind]
            )
            for kind in QUEUES
        }
        return {
            "sent_per_queue": self.ticks,
            "confirmed": {kind: self.confirmed[kind].count for kind in QUEUES},
            "received": {kind: self.received[kind].count for kind in QUEUES},
            "lost": lost,
            "unconfirmed": {kind: self.ticks - self.confirmed[kind].count for kind in QUEUES},
            "duplicates": dict(self.duplicates),
            "resent": self.resent,
            "refused_acks": self.refused_acks,
            "topic_delivered": self.topic_delivered,
            "churns": self.churns,
            "unsubscribe_retries": self.unsubscribe_retries,
            "reconnects": {
                "producer": max(self.producer_watch.connected - 1, 0),
                "consumer": max(self.consumer_watch.connected - 1, 0),
            },
            "losses": {
                "producer": dict(self.producer_watch.losses),
                "consumer": dict(self.consumer_watch.losses),
            },
        }

    # -- producing ---------------------------------------------------------------------------

    def _send(self, kind: str, seq: int) -> None:
        h, s = self.harness, self.settings
        headers = {SEQ: str(seq), SENT: str(time.monotonic_ns())}
        try:
            receipt = h.call(
                "send",
                s.write_bound,
                lambda: self.producer.send(self.queues[kind], BODY, headers=headers, receipt=True),
            )
        except stompws.StompError:
            self._resend.append((kind, seq))
            h.stop.wait(0.05)  # a client refusing at once must not make this a busy loop
            return
        assert receipt is not None  # receipt=True always gives one
        try:
            h.call(
                "confirm-queue",
                s.receipt_timeout,
                lambda: self._pending.put((kind, seq, receipt), timeout=s.receipt_timeout),
            )
        except queue.Full as full:
            h.calls.timed_out("confirm-queue", full)
            self._resend.append((kind, seq))

    def _resend_failed(self) -> None:
        for _ in range(len(self._resend)):
            kind, seq = self._resend.popleft()
            self.resent += 1
            self._send(kind, seq)

    def _produce(self) -> None:
        h, s = self.harness, self.settings
        try:
            started = time.monotonic()
            while not h.stop.is_set():
                self._resend_failed()
                late = time.monotonic() - (started + self.ticks / s.rate)
                if late < 0:
                    if h.stop.wait(-late):
                        break
                elif late > 1.0:
                    # Back after an outage: go on at the steady rate, not in a burst.
                    started = time.monotonic() - self.ticks / s.rate
                for kind in QUEUES:
                    self._send(kind, self.ticks)
                self._tick_topic()
                self.ticks += 1
            deadline = time.monotonic() + s.drain_timeout
            while time.monotonic() < deadline and not self._all_confirmed():
                self._resend_failed()
                time.sleep(0.05)
        finally:
            self._produced.set()

    def _tick_topic(self) -> None:
        # A topic keeps nothing for anyone: a tick lost to a cut is what topics do.
        with contextlib.suppress(stompws.StompError):
            self.harness.call(
                "send",
                self.settings.write_bound,
                lambda: self.producer.send(
                    self.topic, b"tick", headers={SENT: str(time.monotonic_ns())}
                ),
            )

    def _all_confirmed(self) -> bool:
        return all(self.confirmed[kind].floor >= self.ticks for kind in QUEUES)

    def _confirm(self) -> None:
        h, s = self.harness, self.settings
        while True:
            try:
                kind, seq, receipt = self._pending.get(timeout=GET_TIMEOUT)
            except queue.Empty:
                if self._produced.is_set():
                    return
                continue
            try:
                h.call("receipt", s.receipt_timeout, receipt.wait, s.receipt_timeout)
            except stompws.StompError:
                self._resend.append((kind, seq))
            else:
                self.confirmed[kind].add(seq)

    # -- consuming ---------------------------------------------------------------------------

    def _arrived(self, kind: str, frame: stompws.Frame) -> None:
        sent = int(frame.headers[SENT])
        self.harness.window.delivered((time.monotonic_ns() - sent) / 1e9)
        if not self.received[kind].add(int(frame.headers[SEQ])):
            self.duplicates[kind] += 1

    def _ack(self, frame: stompws.Frame) -> None:
        try:
            self.harness.call("ack", self.settings.write_bound, self.consumer.ack, frame)
        except stompws.StompError:
            self.refused_acks += 1  # its connection was lost: the broker redelivers it

    def _on_individual(self, frame: stompws.Frame) -> None:
        self._arrived("individual", frame)
        self._ack(frame)

    def _consume_cumulative(self) -> None:
        h = self.harness
        assert self._cumulative is not None
        last: stompws.Frame | None = None
        unacked = 0
        acked_at = time.monotonic()
        while not h.drained.is_set():
            try:
                frame = h.call("get", GET_TIMEOUT, self._cumulative.get, GET_TIMEOUT)
            except stompws.ReceiveTimeout:
                pass
            else:
                self._arrived("client", frame)
                last, unacked = frame, unacked + 1
            if last is not None and (
                unacked >= ACK_EVERY or time.monotonic() - acked_at >= ACK_PERIOD
            ):
                self._ack(last)
                last, unacked, acked_at = None, 0, time.monotonic()
        if last is not None:
            self._ack(last)

    def _churn(self) -> None:
        h, s = self.harness, self.settings
        subscribe_bound = s.write_bound + s.receipt_timeout
        while not h.stop.is_set():
            try:
                subscription = h.call(
                    "subscribe",
                    subscribe_bound,
                    lambda: self.consumer.subscribe(self.topic, receipt=True),
                )
            except stompws.StompError as error:
                if not isinstance(error, stompws.NotConnected | stompws.ConnectionClosed):
                    h.note(f"{self.name}: churn SUBSCRIBE raised {error!r}")
                h.stop.wait(0.1)
                continue
            until = time.monotonic() + s.churn_every
            while time.monotonic() < until and not h.stop.is_set():
                try:
                    h.call("get", GET_TIMEOUT, subscription.get, GET_TIMEOUT)
                except stompws.ReceiveTimeout:
                    continue
                except stompws.StompError:
                    break  # the subscription ended (its connection was lost for good)
                self.topic_delivered += 1
            self._unsubscribe(subscription)
            self.churns += 1

    def _unsubscribe(self, subscription: stompws.Subscription) -> None:
        """Until it is gone: one left live after a failed UNSUBSCRIBE would be subscribed
        again by every reconnect, and pile up."""
        h, s = self.harness, self.settings
        while subscription.id in {live.id for live in self.consumer.subscriptions}:
            try:
                receipt = h.call(
                    "unsubscribe",
                    s.write_bound + s.receipt_timeout,
                    lambda: self.consumer.unsubscribe(subscription, receipt=True),
                )
                if receipt is not None:
                    h.call("receipt", s.receipt_timeout, receipt.wait, s.receipt_timeout)
                return
            except stompws.StompError:
                self.unsubscribe_retries += 1
                if h.drained.wait(0.1):
                    return  # disconnect() ends it


# -- sampling ----------------------------------------------------------------------------------


def process_figures() -> dict[str, int]:
    """This process's resident memory (KiB), threads (all of them, as the kernel counts),
    open file descriptors, and Python's objects and memory blocks after a full collection.

    The collection first, as tests/support/process.py does before it counts: memory that
    only a reference cycle holds is freed by the collector's next full pass, which Python
    runs after a number of allocations, not on a clock, so without it RSS would rise in
    steps until that pass and fall back (a saw-tooth minutes long that a fitted slope cannot
    tell from a leak). What is still held after it is reachable: a leak if it grows.
    ``garbage`` (what this pass found unreachable) shows how much the cycles come to.
    """
    figures = {"garbage": gc.collect()}
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                figures["rss_kib"] = int(line.split()[1])
            elif line.startswith("Threads:"):
                figures["threads"] = int(line.split()[1])
    figures["fds"] = len(os.listdir("/proc/self/fd")) - 1  # less the one listdir opened
    # Not judged, only shown: when RSS rises, this tells Python objects piling up from
    # the allocator holding on to freed memory.
    figures["py_objects"] = len(gc.get_objects())
    # Blocks Python's allocator hands out (every object, bytes too): flat while RSS rises
    # means the memory is held below Python (the C allocator keeping freed memory).
    figures["py_blocks"] = sys.getallocatedblocks()
    if tracemalloc.is_tracing():
        # Every byte Python allocated and still holds, big blocks too (--trace-memory).
        figures["py_heap_kib"] = tracemalloc.get_traced_memory()[0] // 1024
    return figures


def sample(harness: Harness, lanes: list[Lane], t: float, span: float) -> int:
    """Emit one sample; returns the window's deliveries."""
    delivered, latencies = harness.window.take()
    p50, p99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
    harness.emit(
        event="sample",
        t=round(t, 3),
        **process_figures(),
        msgs_per_s=round(delivered / span, 1) if span > 0 else None,
        p50_ms=None if p50 is None else round(p50 * 1000, 2),
        p99_ms=None if p99 is None else round(p99 * 1000, 2),
        sent=sum(lane.ticks for lane in lanes) * len(QUEUES),
        confirmed=sum(lane.confirmed[k].count for lane in lanes for k in QUEUES),
        received=sum(lane.received[k].count for lane in lanes for k in QUEUES),
        duplicates=sum(sum(lane.duplicates.values()) for lane in lanes),
        resent=sum(lane.resent for lane in lanes),
        reconnects=sum(
            max(w.connected - 1, 0)
            for lane in lanes
            for w in (lane.producer_watch, lane.consumer_watch)
        ),
        overruns=harness.calls.overrun_count,
        timeouts=harness.calls.timeout_count,
    )
    return delivered


def dump_threads(harness: Harness, lanes: list[Lane], why: str) -> None:
    """To stderr: where every thread is and what each lane's consumer looks like, so that a
    stall can be told apart: a reader waiting in recv (the broker sends nothing) from one
    stuck elsewhere (the client)."""
    harness.note(f"{why}: the thread stacks are in the worker's log")
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    print(f"--- {why} ---", file=sys.stderr)
    for lane in lanes:
        print(f"{lane.describe()}", file=sys.stderr)
    for ident, frame in sys._current_frames().items():
        print(f"thread {names.get(ident, ident)}:", file=sys.stderr)
        traceback.print_stack(frame, file=sys.stderr)
    sys.stderr.flush()


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def trimmed_rss() -> tuple[int, int | None]:
    """RSS now, and after asking the C allocator to give back what it keeps free
    (glibc's ``malloc_trim``; None elsewhere). A large drop means the RSS the run gained
    was memory freed and kept for reuse, not memory something still holds."""
    gc.collect()
    before = rss_kib()
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        return before, None
    return before, rss_kib()


def report_growth(since: tracemalloc.Snapshot, lines: int = 25) -> None:
    """To stderr: where the memory allocated since ``since`` and still held was allocated
    (the largest first), to tell a leak of the client from one of this harness."""
    gc.collect()  # what only a cycle kept is no leak: the collector frees it in time
    now = tracemalloc.take_snapshot()
    growth = now.compare_to(since, "traceback")
    total = sum(stat.size_diff for stat in growth) / 1024
    print(f"memory gained since the snapshot: {total:+.1f} KiB in all; by where:", file=sys.stderr)
    for stat in growth[:lines]:
        print(f"{stat.size_diff / 1024:+9.1f} KiB {stat.count_diff:+7d} blocks", file=sys.stderr)
        for line in stat.traceback.format(limit=8, most_recent_first=True):
            print(f"    {line}", file=sys.stderr)


def run(settings: Settings, urls: dict[str, str]) -> None:
    harness = Harness(settings)
    tag = uuid.uuid4().hex[:12]
    lanes = [Lane(harness, name, url, tag) for name, url in urls.items()]
    try:
        for lane in lanes:
            lane.open()
    except stompws.StompError as error:
        harness.emit(event="summary", failures=[f"could not start: {error!r}"])
        return
    started = time.monotonic()
    sample(harness, lanes, 0.0, 0.0)
    harness.window.take()  # the deliveries so far are not the first window's
    harness.emit(event="ready")
    for lane in lanes:
        lane.start()
    count = int(settings.seconds // settings.sample_every)
    taken = started
    traced: tracemalloc.Snapshot | None = None
    stalled = False
    for n in range(1, count + 1):
        if settings.trace_memory and traced is None and n > count // 3:
            gc.collect()
            traced = tracemalloc.take_snapshot()
        due = started + n * settings.sample_every
        if harness.stop.wait(max(due - time.monotonic(), 0.0)):
            break  # a harness thread died: stop here and report it
        now = time.monotonic()
        delivered = sample(harness, lanes, now - started, now - taken)
        taken = now
        if not delivered and not stalled and not all(lane.all_received() for lane in lanes):
            stalled = True  # once: the first stall is the one to look at
            window_end = now - started
            dump_threads(harness, lanes, f"nothing delivered in the window to {window_end:.0f} s")
    harness.stop.set()
    if traced is not None:
        report_growth(traced)

    drain_end = time.monotonic() + settings.drain_timeout
    for lane in lanes:
        lane.wait_confirmed(drain_end)
    while time.monotonic() < drain_end and not all(lane.all_received() for lane in lanes):
        time.sleep(0.05)
    drained_in = settings.drain_timeout - (drain_end - time.monotonic())
    if not all(lane.all_received() for lane in lanes):
        dump_threads(harness, lanes, f"the drain ended after {drained_in:.0f} s, incomplete")
    harness.drained.set()
    rss_end, rss_trimmed = trimmed_rss()  # the clients still up: only freed memory goes
    stuck = [name for lane in lanes for name in lane.close()]
    harness.emit(
        event="summary",
        seconds=round(time.monotonic() - started, 1),
        drained_in_s=round(drained_in, 2),
        lanes={lane.name: lane.summary() for lane in lanes},
        **harness.calls.summary(),
        stuck_threads=stuck,
        failures=harness.failures,
        notes=harness.notes,
        rss_end_kib=rss_end,
        rss_after_trim_kib=rss_trimmed,
        grace_s=GRACE,
    )


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    options.add_argument("--url", action="append", required=True, metavar="NAME=URL")
    options.add_argument("--seconds", type=float, required=True)
    options.add_argument("--sample-every", type=float, required=True)
    options.add_argument("--rate", type=float, required=True)
    options.add_argument("--heartbeats", type=int, required=True)
    options.add_argument("--heartbeat-tolerance", type=float, required=True)
    options.add_argument("--churn-every", type=float, required=True)
    options.add_argument("--drain-timeout", type=float, required=True)
    options.add_argument("--connect-timeout", type=float, required=True)
    options.add_argument("--write-timeout", type=float, required=True)
    options.add_argument("--receipt-timeout", type=float, required=True)
    options.add_argument("--trace-memory", action="store_true")
    args = options.parse_args()
    if args.trace_memory:
        tracemalloc.start(8)
    urls = dict(item.split("=", 1) for item in args.url)
    settings = Settings(
        seconds=args.seconds,
        sample_every=args.sample_every,
        rate=args.rate,
        heartbeat_ms=args.heartbeats,
        heartbeat_tolerance=args.heartbeat_tolerance,
        churn_every=args.churn_every,
        drain_timeout=args.drain_timeout,
        connect_timeout=args.connect_timeout,
        write_timeout=args.write_timeout,
        receipt_timeout=args.receipt_timeout,
        trace_memory=args.trace_memory,
    )
    run(settings, urls)
    sys.stdout.flush()
    # Daemon threads stuck in a client call were reported; do not wait for them here.
    os._exit(0)


if __name__ == "__main__":
    main()
