"""A broker restart in the middle of a stream: nothing that was confirmed is lost.

A producer (STOMP over TCP) sends numbered persistent messages to a durable queue, each with
a receipt, and sends a number again when its send or receipt failed because of the loss. A
consumer (STOMP over WebSocket on RabbitMQ, over TCP on ActiveMQ, which Debian builds
without its WebSocket transport; client-individual acks) records what arrives. Both have
reconnect. In the middle, scripts/brokers/rabbitmq.sh or activemq.sh restarts the broker
(its data kept: RabbitMQ's durable queue, ActiveMQ's KahaDB store).
Afterwards every number that got a RECEIPT has arrived at least once, both clients are
connected again, and the test prints reconnects, counts, duplicates and recovery times.

The consumer runs without heart-beats: RabbitMQ 3.10's Web STOMP heart-beat monitor can
crash a busy connection (DESIGN.md); the restart closes the connections anyway.

Isolated: the restart drops every other test's connection to that broker, so `make test`
runs it in a pytest run of its own after the rest.
"""

from __future__ import annotations

import collections
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

import stompws
from stompws import Reconnect, StompError

from ..support.recording import Recorder
from ..waiting import wait_until
from .conftest import ClientFactory
from .support import BROKERS, WAIT, Broker, new_queue

pytestmark = [pytest.mark.brokers, pytest.mark.isolated]

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts" / "brokers"


@dataclass(frozen=True)
class Restarted:
    name: str
    script: str
    consumer: str  # the broker endpoints (tests/faults/support.py BROKERS) of each client
    producer: str


RESTARTED = [
    Restarted("rabbitmq", "rabbitmq.sh", consumer="rabbitmq-ws", producer="rabbitmq-tcp"),
    Restarted("activemq", "activemq.sh", consumer="activemq-tcp", producer="activemq-tcp"),
]
SCRIPT_TIMEOUT = 120.0
RECONNECT = Reconnect(initial=0.05, maximum=0.5)
BEFORE = 200  # confirmed messages before the restart
AFTER = 200  # confirmed messages after both clients are back


class Stream:
    """What the producer confirmed and what the consumer received, with waits on both."""

    def __init__(self) -> None:
        self.condition = threading.Condition()
        self.confirmed: list[int] = []
        self.received: collections.Counter[int] = collections.Counter()
        self.send_failures: collections.Counter[str] = collections.Counter()
        # number -> how many times it had arrived when an ack of it was refused: the broker
        # must deliver it again after that (it was never acked).
        self.ack_refused: dict[int, int] = {}

    def wait(self, ready: Callable[[], bool], what: str, timeout: float) -> None:
        wait_until(self.condition, lambda: True if ready() else None, what, timeout)

    def missing(self) -> list[int]:
        return [number for number in self.confirmed if number not in self.received]

    def not_redelivered(self) -> list[int]:
        """Numbers whose ack was refused and that have not arrived again since."""
        return [n for n, seen in self.ack_refused.items() if self.received[n] <= seen]


def _script(script: str, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPTS / script), command],
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT,
        check=False,
    )


def _produce(producer: stompws.Client, queue: str, stream: Stream, stop: threading.Event) -> None:
    number = 0
    while not stop.is_set():
        while not stop.is_set():  # this number until it is confirmed
            try:
                receipt = producer.send(
                    queue, str(number), headers={"persistent": "true"}, receipt=True
                )
                assert receipt is not None
                receipt.wait(WAIT)
            except StompError as error:  # the loss: send it again (maybe a duplicate)
                with stream.condition:
                    stream.send_failures[type(error).__name__] += 1
                continue
            with stream.condition:
                stream.confirmed.append(number)
                stream.condition.notify_all()
            break
        number += 1


@pytest.mark.timeout(240)
@pytest.mark.parametrize("restarted", RESTARTED, ids=[r.name for r in RESTARTED])
def test_broker_restart_in_the_middle_of_a_stream(
    require: Callable[[Broker], Broker], make_client: ClientFactory, restarted: Restarted
) -> None:
    ws = require(BROKERS[restarted.consumer])  # the consumer's endpoint (WebSocket or not)
    tcp = require(BROKERS[restarted.producer])
    queue = new_queue("faults-restart")
    stream = Stream()

    def consume(frame: stompws.Frame) -> None:
        number = int(frame.text)
        with stream.condition:
            stream.received[number] += 1
            stream.condition.notify_all()
        try:
            frame.ack()
        except StompError:  # it came over a lost connection: the broker redelivers it
            with stream.condition:
                stream.ack_refused[number] = stream.received[number]

    consumer_events, producer_events = Recorder(), Recorder()
    consumer = make_client(ws.url, heartbeats=(0, 0), reconnect=RECONNECT, connect_timeout=5.0)
    consumer.add_listener(consumer_events)
    consumer.connect()
    consumer.subscribe(
        queue,
        ack="client-individual",
        headers={"prefetch-count": "100"},
        callback=consume,
        receipt=True,
    )
    producer = make_client(
        tcp.url, heartbeats=(1000, 1000), reconnect=RECONNECT, connect_timeout=5.0
    )
    producer.add_listener(producer_events)
    producer.connect()

    stop = threading.Event()
    feeder = threading.Thread(
        target=_produce, args=(producer, queue, stream, stop), name="producer", daemon=True
    )
    try:
        feeder.start()
        stream.wait(
            lambda: len(stream.confirmed) >= BEFORE and len(stream.received) >= BEFORE // 2,
            f"{BEFORE} confirmed messages before the restart",
            WAIT,
        )
        restart_at = time.monotonic()
        restart = _script(restarted.script, "restart")
        back_at = time.monotonic()
        assert restart.returncode == 0, restart.stdout + restart.stderr
        with stream.condition:
            confirmed_at_restart = len(stream.confirmed)
        consumer_back = consumer_events.wait_for_events("connected", 2, timeout=30)[1].at
        producer_back = producer_events.wait_for_events("connected", 2, timeout=30)[1].at
        stream.wait(
            lambda: len(stream.confirmed) >= confirmed_at_restart + AFTER,
            f"{AFTER} confirmed messages after the restart",
            30,
        )
        stop.set()
        feeder.join(WAIT + 5)
        assert not feeder.is_alive(), "the producer hung"
        stream.wait(
            lambda: not stream.missing(),
            "every confirmed message at the consumer",
            30,
        )
        stream.wait(
            lambda: not stream.not_redelivered(),
            "every message whose ack was refused delivered again",
            30,
        )
    finally:
        stop.set()
        feeder.join(WAIT + 5)
        started = _script(restarted.script, "start")  # it runs again for whatever comes next
        if started.returncode != 0:
            print(f"{restarted.script} start failed:\n{started.stdout}{started.stderr}")
    assert started.returncode == 0, started.stdout + started.stderr

    assert consumer.is_connected and producer.is_connected
    with stream.condition:
        confirmed = list(stream.confirmed)
        received = collections.Counter(stream.received)
        failures = dict(stream.send_failures)
        ack_failures = len(stream.ack_refused)
        sent_at_most = len(stream.confirmed) + 1  # the last number may be unconfirmed
    duplicates = sum(count - 1 for count in received.values())
    unconfirmed_arrivals = len(set(received) - set(confirmed))
    reconnects = (
        len(consumer_events.of("connected")) - 1,
        len(producer_events.of("connected")) - 1,
    )
    failed_attempts = (
        len(consumer_events.of("connecting")) - len(consumer_events.of("connected")),
        len(producer_events.of("connecting")) - len(producer_events.of("connected")),
    )
    print(
        f"\n{restarted.name} restart: script took {back_at - restart_at:.1f} s; consumer "
        f"({restarted.consumer}) back {consumer_back - restart_at:.1f} s and producer "
        f"({restarted.producer}) back "
        f"{producer_back - restart_at:.1f} s after the restart began "
        f"({consumer_back - back_at:+.1f} s / {producer_back - back_at:+.1f} s after the "
        f"script returned); reconnects consumer {reconnects[0]}, producer {reconnects[1]}; "
        f"failed attempts consumer {failed_attempts[0]}, producer {failed_attempts[1]}; "
        f"confirmed {len(confirmed)}, received {sum(received.values())} "
        f"({len(received)} distinct, {duplicates} duplicates, {unconfirmed_arrivals} "
        f"unconfirmed but delivered); send failures retried {failures}; "
        f"acks refused after the loss {ack_failures}"
    )
    assert reconnects[0] >= 1 and reconnects[1] >= 1
    # Nothing arrived that was never sent (a body mixed up across the loss, a stale buffer):
    # the producer sent only 0 .. its last number.
    strays = sorted(set(received) - set(range(sent_at_most)))
    assert not strays, f"received numbers never sent: {strays[:10]}"
