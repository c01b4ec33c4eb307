"""The short fuzz run of the test suite (the long one: ``make fuzz``, see harness.py).

Every seed, cut every way that matters; a few thousand generated and mutated inputs through
the parser and the client's receive path; and a few dozen through a whole ``Client`` over
TCP, to check that a hostile stream ends the connection cleanly (a ``ProtocolError`` or a
normal end, no thread left, no hang).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

import stompws

from ..fakes import Peer, fake_broker
from ..support.volume import scaled
from .harness import CRASHES_DIR, SEEDS, Tally, check, make_fuzz_test, mutate

WAIT = 5.0


@pytest.mark.parametrize("index", range(len(SEEDS)))
def test_seed(index: int) -> None:
    data = SEEDS[index]
    cut_ways = [[], list(range(len(data))), [1], [len(data) // 2], [len(data) - 1]]
    for cuts in cut_ways:
        for pick in range(16):
            check(data, cuts, pick)


SAVED_CRASHES = sorted(CRASHES_DIR.glob("*.stomp"))


def test_the_crash_corpus_is_there() -> None:
    # Without this, a renamed or missing directory would turn the next test into an empty
    # parametrization that passes (or skips) while checking nothing.
    assert SAVED_CRASHES, f"no saved inputs in {CRASHES_DIR}"


@pytest.mark.parametrize("path", SAVED_CRASHES, ids=[path.stem for path in SAVED_CRASHES])
def test_saved_crashes_stay_fixed(path: Path) -> None:
    data = path.read_bytes()
    cut_ways = [[], [1], [len(data) // 2], [len(data) - 1]]
    for cuts in cut_ways:
        for pick in range(16):
            check(data, cuts, pick)


def test_short_fuzz() -> None:
    tally = Tally()
    make_fuzz_test(tally, examples=scaled(800), mutants=16)()
    assert tally.inputs >= scaled(800) * 17


def test_hostile_streams_through_a_client() -> None:
    rng = random.Random(8)
    streams = [*SEEDS, *(mutate(rng.choice(SEEDS), rng) for _ in range(40))]
    for stream in streams:

        def script(peer: Peer, stream: bytes = stream) -> None:
            peer.frame()  # CONNECT
            try:
                peer.send(stream)
            except OSError:  # the client already ended the connection
                return
            peer.connection.end_writing()
            peer.connection.wait_closed(WAIT)  # the client's reaction, if any, is read

        with fake_broker(script) as broker:
            client = stompws.Client(broker.url, heartbeats=(0, 0), connect_timeout=WAIT)
            waiter = stompws.WaitingListener()
            client.add_listener(waiter)
            try:
                client.connect()
            except stompws.StompError:
                pass  # no CONNECTED, an ERROR, or a malformed one: all fine, if clean
            else:
                reason = waiter.wait_for_disconnect(WAIT)
                assert isinstance(reason, stompws.StompError), reason  # never a bare crash
            client.disconnect(timeout=1.0)
            assert not client.is_connected
