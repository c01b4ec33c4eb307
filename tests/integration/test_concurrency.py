"""Many threads sending on one client: no frame may be corrupted, lost or duplicated."""

from __future__ import annotations

import hashlib
import threading

import pytest

import stompws

from ..support.recording import Collector

pytestmark = pytest.mark.brokers

THREADS = 8
PER_THREAD = 200


def _body(thread: int, number: int) -> bytes | str:
    """Distinct, self-checking bodies of varying length; the odd threads send bytes with
    NUL and invalid UTF-8 (binary WebSocket messages), the even ones unicode text."""
    key = f"{thread}-{number}"
    digest = hashlib.sha256(key.encode()).hexdigest()
    filler = digest * (1 + number % 7)
    if thread % 2:
        return key.encode() + b"\x00\xff" + filler.encode() + b"\x00"
    return f"{key} ✓ {filler}"


def test_concurrent_senders_never_corrupt_a_frame(fast_client: stompws.Client, queue: str) -> None:
    collected = Collector()
    fast_client.subscribe(queue, callback=collected, receipt=True)
    go = threading.Event()
    failures: list[BaseException] = []

    def send_all(thread: int) -> None:
        go.wait(10.0)
        try:
            for number in range(PER_THREAD):
                fast_client.send(
                    queue, _body(thread, number), headers={"x-key": f"{thread}-{number}"}
                )
        except BaseException as error:  # reported by the main thread
            failures.append(error)

    senders = [
        threading.Thread(target=send_all, args=(n,), name=f"test-sender-{n}", daemon=True)
        for n in range(THREADS)
    ]
    for sender in senders:
        sender.start()
    go.set()
    for sender in senders:
        sender.join(60.0)
    assert not any(sender.is_alive() for sender in senders)
    assert failures == []

    frames = collected.wait_for(THREADS * PER_THREAD, timeout=60.0)

    assert len(frames) == THREADS * PER_THREAD  # no more than sent
    by_key = {}
    for frame in frames:
        key = frame.headers["x-key"]
        assert key not in by_key, f"{key} delivered twice"
        by_key[key] = frame
    for thread in range(THREADS):
        for number in range(PER_THREAD):
            expected = _body(thread, number)
            frame = by_key[f"{thread}-{number}"]
            raw = expected.encode() if isinstance(expected, str) else expected
            assert frame.body == raw, f"{thread}-{number} corrupted"
    # Per sender, its messages arrive in the order it sent them.
    for thread in range(THREADS):
        order = [
            int(frame.headers["x-key"].split("-")[1])
            for frame in frames
            if frame.headers["x-key"].startswith(f"{thread}-")
        ]
        assert order == list(range(PER_THREAD))
    assert fast_client.is_connected
