"""RabbitMQ's memory alarm: publishers are blocked, consumers are not, nothing confirmed is
lost, and everything flows again once it clears.

With the alarm on, RabbitMQ stops reading from every connection that publishes (TCP flow
control: its socket buffers fill, then the client's writes wait). What a user sees:
- a consumer keeps receiving (it publishes nothing, so it is not blocked);
- the producer's ``send()`` waits, and past ``write_timeout`` fails with ``WriteTimeout``
  (a ``ConnectionClosed`` and a ``TimeoutError``): the connection is ended, since part of a
  frame may be out; the receipts still pending fail with it; nothing is dropped silently;
- with ``Reconnect`` the producer connects again by itself (RabbitMQ accepts connections
  during an alarm; only publishing blocks) and, once the alarm clears, its sends go through.

Isolated: the alarm blocks every publisher on the node, so `make test` runs it alone.
"""

from __future__ import annotations

import collections
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import stompws
from stompws import Reconnect, StompError, WriteTimeout

from ..support.recording import Recorder
from ..waiting import wait_until
from .conftest import ClientFactory
from .support import BROKERS, WAIT, Broker, new_queue

pytestmark = [pytest.mark.brokers, pytest.mark.isolated]

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "brokers" / "rabbitmq.sh"
CTL_TIMEOUT = 60.0
WRITE_TIMEOUT = 2.0
BIG = "x" * (256 << 10)  # a few of these fill the socket buffers between us and the broker
BACKLOG = 50


def _ctl(*args: str) -> str:
    done = subprocess.run(
        [str(SCRIPT), "ctl", *args], capture_output=True, text=True, timeout=CTL_TIMEOUT
    )
    assert done.returncode == 0, f"rabbitmqctl {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout.strip()


def _memory_alarm_on() -> bool:
    return "memory" in _ctl("eval", "rabbit_alarm:get_alarms().")


def _wait_for_alarm(on: bool) -> None:
    deadline = time.monotonic() + 30
    while _memory_alarm_on() is not on:  # each check is a CLI run (about a second): paced
        assert time.monotonic() < deadline, f"the memory alarm is not {'on' if on else 'off'}"


class Ledger:
    """What the producer had confirmed and what the consumer received."""

    def __init__(self) -> None:
        self.condition = threading.Condition()
        self.confirmed: set[str] = set()
        self.received: collections.Counter[str] = collections.Counter()

    def on_message(self, frame: stompws.Frame) -> None:
        with self.condition:
            self.received[frame.headers.get("n", "?")] += 1
            self.condition.notify_all()

    def wait_received(self, names: set[str], what: str) -> None:
        try:
            wait_until(
                self.condition, lambda: True if names <= set(self.received) else None, what, WAIT
            )
        except AssertionError as error:
            with self.condition:
                missing = sorted(names - set(self.received))
            raise AssertionError(f"{error}; missing {len(missing)}: {missing[:20]}") from None


@pytest.mark.timeout(180)
def test_a_memory_alarm_blocks_the_producer_not_the_consumer_and_nothing_is_lost(
    require: Callable[[Broker], Broker], make_client: ClientFactory
) -> None:
    ws, tcp = require(BROKERS["rabbitmq-ws"]), require(BROKERS["rabbitmq-tcp"])
    queue, backlog_queue = new_queue("alarm"), new_queue("alarm-backlog")
    ledger = Ledger()
    consumer = make_client(ws.url, heartbeats=(0, 0))
    consumer.connect()
    consumer.subscribe(queue, callback=ledger.on_message, receipt=True)
    producer_events = Recorder()
    producer = make_client(
        tcp.url,
        heartbeats=(0, 0),
        write_timeout=WRITE_TIMEOUT,
        reconnect=Reconnect(initial=0.2, maximum=1.0),
    )
    producer.add_listener(producer_events)
    producer.connect()

    def confirmed_send(destination: str, name: str, body: str = "") -> None:
        receipt = producer.send(destination, body, headers={"n": name}, receipt=True)
        assert receipt is not None
        receipt.wait(WAIT)
        if destination == queue:  # the backlog is checked where it is read, below
            with ledger.condition:
                ledger.confirmed.add(name)

    for number in range(10):
        confirmed_send(queue, f"before-{number}")
    for number in range(BACKLOG):  # waits in its queue for a consumer that comes later
        confirmed_send(backlog_queue, f"backlog-{number}")
    ledger.wait_received({f"before-{n}" for n in range(10)}, "the messages before the alarm")

    blocked: dict[str, object] = {}

    def publish_until_blocked() -> None:
        number = 0
        pending: list[tuple[str, stompws.Receipt]] = []
        try:
            while True:
                name = f"during-{number}"
                started = time.monotonic()
                receipt = producer.send(queue, BIG, headers={"n": name}, receipt=True)
                assert receipt is not None
                pending.append((name, receipt))
                number += 1
                blocked["last_send_took"] = time.monotonic() - started
        except StompError as error:
            blocked["error"] = error
            blocked["failed_send_took"] = time.monotonic() - started
        # What was written before the block got no RECEIPT: each fails, none is dropped.
        failed = 0
        for name, receipt in pending:
            try:
                receipt.wait(WAIT)
            except StompError:
                failed += 1
            else:
                with ledger.condition:
                    ledger.confirmed.add(name)
        blocked["receipts_failed"] = failed
        blocked["sent"] = number

    publisher = threading.Thread(target=publish_until_blocked, name="publisher", daemon=True)
    try:
        _ctl("set_vm_memory_high_watermark", "0.00001")
        _wait_for_alarm(True)
        alarm_at = time.monotonic()
        publisher.start()

        # The consumer is not blocked: a new subscription gets the whole backlog.
        backlog = consumer.subscribe(backlog_queue, receipt=True)
        arrived = {backlog.get(WAIT).headers["n"] for _ in range(BACKLOG)}
        assert arrived == {f"backlog-{n}" for n in range(BACKLOG)}
        backlog_drained_after = time.monotonic() - alarm_at

        publisher.join(WRITE_TIMEOUT * 4 + WAIT)
        assert not publisher.is_alive(), "send() hung past write_timeout under the alarm"
        error = blocked.get("error")
        assert isinstance(error, WriteTimeout), error
        assert "write_timeout" in str(error)
        failed_send_took = blocked["failed_send_took"]
        assert isinstance(failed_send_took, float)
        assert WRITE_TIMEOUT - 0.1 <= failed_send_took <= WRITE_TIMEOUT + 3.0, failed_send_took
    finally:
        _ctl("set_vm_memory_high_watermark", "0.4")  # the node's setting (rabbitmq.sh)
    _wait_for_alarm(False)
    cleared_at = time.monotonic()

    # Reconnected without user action, and publishing again.
    producer_events.wait_for("connected", 2, timeout=30)
    confirmed_send(queue, "after")
    back_after = time.monotonic() - cleared_at
    with ledger.condition:
        confirmed = set(ledger.confirmed)
    ledger.wait_received(confirmed, "every confirmed message at the consumer")
    print(
        f"\nmemory alarm: backlog of {BACKLOG} drained {backlog_drained_after:.1f} s into the "
        f"alarm; producer sent {blocked['sent']} x 256 KiB, then send() failed after "
        f"{blocked['failed_send_took']:.1f} s: {blocked['error']}; receipts failed "
        f"{blocked['receipts_failed']}; confirmed after the alarm cleared in "
        f"{back_after:.1f} s; {len(confirmed)} confirmed, all received"
    )
