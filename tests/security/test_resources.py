"""Resources: no thread or file descriptor outlives a client, a forgotten client does not keep
the process alive, and concurrent senders never interleave or lose a frame."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid

import pytest

import stompws
from stompws.testing import Broker

from ..support.process import settle
from ..support.volume import scaled
from .conftest import LOGIN, PASSCODE, ROOT

WAIT = 20.0


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _client_threads() -> list[str]:
    return [
        t.name
        for t in threading.enumerate()
        if t.name.startswith("stompws-") and not t.name.startswith("stompws-testbroker-")
    ]


def _settled() -> tuple[int, int]:
    """The process's descriptors and threads once the threads of closed connections (the
    broker's side too) have ended and unreachable sockets are collected."""
    settle()
    return _fds(), threading.active_count()


@pytest.mark.process_state
def test_a_thousand_connect_disconnect_cycles_leave_nothing_behind(broker: Broker) -> None:
    """Process state: counts every thread and file descriptor of the process."""
    assert broker.tcp_url is not None
    url = broker.tcp_url

    def cycle(index: int) -> None:
        # Every other cycle negotiates heart-beats, so the heart-beat thread is covered too;
        # every tenth subscribes, so a subscription's buffer and waiters are too.
        beats = (1000, 1000) if index % 2 else (0, 0)
        client = stompws.Client(url, login=LOGIN, passcode=PASSCODE, heartbeats=beats)
        client.connect(timeout=WAIT)
        if index % 10 == 0:
            client.subscribe(f"/queue/cycle-{index}")
        client.disconnect(timeout=WAIT)

    cycle(0)  # warm up: lazy imports, the broker's first connection
    fds_before, threads_before = _settled()
    started = time.monotonic()
    for index in range(1, scaled(1000) + 1):  # a thousand, but in the matrix (volume.py)
        cycle(index)
    elapsed = time.monotonic() - started
    assert _client_threads() == []
    fds_after, threads_after = _settled()
    assert fds_after <= fds_before, f"{fds_after - fds_before} file descriptors leaked"
    assert threads_after <= threads_before, threading.enumerate()
    print(f"{scaled(1000):,} connect/disconnect cycles in {elapsed:.1f} s")


@pytest.mark.process_state
def test_failed_connects_leave_nothing_behind(broker: Broker) -> None:
    """Process state: counts every thread and file descriptor of the process."""
    assert broker.tcp_url is not None
    fds_before, threads_before = _settled()
    for _ in range(100):
        client = stompws.Client(broker.tcp_url, login=LOGIN, passcode="wrong", heartbeats=(0, 0))
        with contextlib.suppress(stompws.BrokerError):
            client.connect(timeout=WAIT)
        client.disconnect()
    assert _client_threads() == []
    fds_after, threads_after = _settled()
    assert fds_after <= fds_before and threads_after <= threads_before


def test_a_client_dropped_without_disconnect_does_not_keep_the_process_alive(
    broker: Broker,
) -> None:
    assert broker.tcp_url is not None and broker.ws_url is not None
    script = textwrap.dedent(
        f"""
        import sys, stompws
        for url in sys.argv[1:]:
            client = stompws.Client(
                url, login="{LOGIN}", passcode="{PASSCODE}", heartbeats=(200, 200),
                reconnect=stompws.Reconnect(initial=0.1),
            )
            client.connect(timeout=10)
            client.subscribe("/queue/dropped")
            client.send("/queue/dropped", "left behind")
        print("main is done", flush=True)
        # No disconnect(): the interpreter must still exit.
        """
    )
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", script, broker.tcp_url, broker.ws_url],
        capture_output=True,
        text=True,
        timeout=WAIT,
        cwd=ROOT,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert "main is done" in done.stdout
    assert "Traceback" not in done.stderr, done.stderr
    assert elapsed < 5.0, f"the process took {elapsed:.1f} s to exit"


def test_16_threads_times_2000_sends_with_receipts_arrive_intact() -> None:
    threads, per_thread = 16, scaled(2000)
    queue = f"/queue/many-{uuid.uuid4().hex[:8]}"

    def body(thread: int, seq: int) -> bytes:
        # Sizes vary (so frames straddle reads differently) and a digest makes any
        # corruption or interleaving of two frames visible.
        payload = f"{thread}:{seq}:".encode() + bytes([65 + (thread + seq) % 26]) * (seq % 300)
        return payload + b"|" + hashlib.blake2s(payload, digest_size=8).hexdigest().encode()

    # A broker of its own: 32,000 messages are not left in the shared one's memory.
    with (
        Broker(websocket=False) as own,
        stompws.Client(own.tcp_url or "", heartbeats=(0, 0)) as consumer,
        stompws.Client(own.tcp_url or "", heartbeats=(0, 0)) as producer,
    ):
        inbox = consumer.subscribe(queue, receipt=True, max_buffered=threads * per_thread)
        failures: list[BaseException] = []
        started = time.monotonic()

        def send_all(thread: int) -> None:
            try:
                receipts = [
                    producer.send(queue, body(thread, seq), receipt=True)
                    for seq in range(per_thread)
                ]
                for receipt in receipts:
                    assert receipt is not None
                    receipt.wait(WAIT)
            except BaseException as error:
                failures.append(error)

        senders = [threading.Thread(target=send_all, args=(n,)) for n in range(threads)]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join(60.0)
        assert not failures, failures[0]
        sent_in = time.monotonic() - started
        received = [inbox.get(timeout=WAIT) for _ in range(threads * per_thread)]
        elapsed = time.monotonic() - started

    next_seq = [0] * threads
    for frame in received:
        thread_text, seq_text, _ = frame.body.split(b":", 2)
        thread, seq = int(thread_text), int(seq_text)
        assert frame.body == body(thread, seq), "a frame arrived changed"
        assert seq == next_seq[thread], "one thread's frames arrived out of order"
        next_seq[thread] += 1
        assert frame.headers["content-length"] == str(len(frame.body))
    assert next_seq == [per_thread] * threads
    print(
        f"{threads * per_thread:,} sends with receipts in {sent_in:.1f} s, "
        f"all received in {elapsed:.1f} s"
    )
