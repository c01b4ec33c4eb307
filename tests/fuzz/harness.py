"""Fuzzing the bytes a broker sends: through ``FrameParser`` and ``ClientProtocol.receive_data``.

The one rule checked: whatever the bytes, and however they are cut into reads, the only
exception that may escape is ``ProtocolError``. Besides, when a stream parses without error
both whole and cut into pieces, both give the same frames (the parser must not depend on
where reads end).

Inputs come from two sources, combined:

* hypothesis generates them: a seed from ``seeds/`` (real-looking broker streams) changed by
  a few drawn mutations, or frames built from drawn commands, headers and bodies, or plain
  drawn bytes; and the cut points of the reads;
* each generated input is then mutated ``MUTANTS`` more times by a cheap byte mutator
  (flips, inserts of STOMP's special bytes and tokens, deletions, duplications, splices
  with other seeds) seeded by hypothesis, so that a million inputs take minutes, not hours.

Run the long fuzz (``make fuzz``) with::

    .venv/bin/python -m tests.fuzz.harness --inputs 1000000

An input that lets another exception escape is written to ``tests/fuzz/crashes/`` and the
run exits with status 1; add it to ``seeds/`` once fixed, so that the short run in the test
suite (``tests/fuzz/test_fuzz.py``) keeps checking it.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import random
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from stompws import Frame, FrameParser, ProtocolError
from stompws.protocol import ClientProtocol, State

HERE = Path(__file__).resolve().parent
SEEDS_DIR = HERE / "seeds"
CRASHES_DIR = HERE / "crashes"
MUTANTS = 32  # byte-mutated inputs derived from each generated one (cheap: hypothesis is not)
VERSIONS = ("1.0", "1.1", "1.2")
# Small limits, so that the fuzz reaches the limit checks too (the defaults are megabytes).
LIMITS: dict[str, Any] = {"max_frame_size": 512, "max_header_count": 12, "max_header_line": 96}

TOKENS = [
    b"\n",
    b"\r\n",
    b"\r",
    b"\x00",
    b":",
    b"\\",
    b"\\n",
    b"\\c",
    b"\\r",
    b"\\\\",
    b"\\t",
    b"\n\n",
    b"\x00\n",
    b"content-length:",
    b"content-length:0",
    b"content-length:5",
    b"content-length:-1",
    b"content-length:99999999999",
    b"content-length: 3",
    b"content-length:0x10",
    b"content-length:\xd9\xa3",
    b"MESSAGE\n",
    b"CONNECTED\n",
    b"ERROR\n",
    b"RECEIPT\n",
    b"receipt-id:",
    b"subscription:s\n",
    b"version:1.0\n",
    b"version:1.1\n",
    b"version:9\n",
    b"heart-beat:",
    b"heart-beat:-5,x\n",
    b"\xff",
    b"\xc3",
    b"\xe2\x98",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
]
COMMANDS = ["CONNECTED", "MESSAGE", "RECEIPT", "ERROR", "SEND", "", "message", "CONNECTED "]


def load_seeds() -> list[bytes]:
    return [path.read_bytes() for path in sorted(SEEDS_DIR.glob("*.stomp"))]


SEEDS = load_seeds()


# -- the checks ------------------------------------------------------------------------------


def _cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(max(c, 0), len(data)) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)] or [b""]


def _shape(items: list[object]) -> list[object]:
    return [
        (item.command, item.header_list, item.body) if isinstance(item, Frame) else repr(item)
        for item in items
    ]


def check_parser(data: bytes, cuts: list[int], version: str, limited: bool) -> None:
    limits = LIMITS if limited else {}
    whole: list[object] | None = []
    try:
        whole = list(FrameParser(version, **limits).feed(data))
    except ProtocolError:
        whole = None
    parser = FrameParser(version, **limits)
    pieces: list[object] = []
    try:
        for piece in _cut(data, cuts):
            pieces += parser.feed(piece)
    except ProtocolError as error:
        first = error
    else:
        if whole is not None:
            assert _shape(pieces) == _shape(whole), "the frames depend on where reads end"
        return
    # After an error the parser stays broken and says so again.
    again: ProtocolError | None = None
    try:
        parser.feed(b"MESSAGE\n\n\x00")
    except ProtocolError as error:
        again = error
    if again is None or str(again) != str(first):
        raise AssertionError(f"a broken parser went on: {again!r} after {first!r}")


def check_client(data: bytes, cuts: list[int], versions: tuple[str, ...], limited: bool) -> None:
    """The client's receive path: CONNECT sent, then the broker's bytes, read by read.

    When a CONNECTED arrives, a subscription is made (as a user would), so that MESSAGE
    frames that follow meet one."""
    limits = LIMITS if limited else {}
    session = ClientProtocol(versions=versions, heartbeats=(100, 100), **limits)
    session.connect(login="fuzz", passcode="fuzz")
    now = 0.0
    try:
        for piece in _cut(data, cuts):
            now += 0.01
            session.receive_data(piece, now)
            if session.state is State.CONNECTED and not session.subscriptions:
                session.subscribe("/queue/fuzz", id="s", ack="client")
            session.heartbeat_due(now)
            session.broker_silent(now)
    except ProtocolError:
        pass
    session.connection_lost()


def check(data: bytes, cuts: list[int], pick: int) -> None:
    """Both checks, with a version and limits chosen by ``pick``."""
    version = VERSIONS[pick % 3]
    limited = bool(pick & 4)
    check_parser(data, cuts, version, limited)
    offered = VERSIONS if pick & 8 else (version,)
    check_client(data, cuts, offered, limited)


# -- the byte mutator ------------------------------------------------------------------------


def mutate(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        choice = rng.randrange(7)
        at = rng.randint(0, len(buf))
        if choice == 0 and buf:  # flip a bit
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
        elif choice == 1:  # insert a token STOMP gives meaning to
            buf[at:at] = rng.choice(TOKENS)
        elif choice == 2 and buf:  # delete a run
            del buf[at : at + rng.randint(1, 8)]
        elif choice == 3 and buf:  # duplicate a run
            start = rng.randrange(len(buf))
            buf[at:at] = buf[start : start + rng.randint(1, 32)]
        elif choice == 4:  # splice in a piece of another seed
            other = rng.choice(SEEDS)
            start = rng.randrange(len(other))
            buf[at:at] = other[start : start + rng.randint(1, 64)]
        elif choice == 5 and buf:  # set a byte to anything
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        else:  # repeat a token many times (long lines, many headers)
            buf[at:at] = rng.choice([*TOKENS, b"h:v\n", b"x"]) * rng.randint(2, 200)
    return bytes(buf)


# -- what hypothesis generates ---------------------------------------------------------------

_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=12)
_header = st.tuples(_text, _text)
_frame = st.builds(
    lambda command, headers, body, version, length: _encode(
        command, headers, body, version, length
    ),
    st.sampled_from(COMMANDS),
    st.lists(_header, max_size=5),
    st.binary(max_size=40),
    st.sampled_from(VERSIONS),
    st.booleans(),
)


def _encode(
    command: str, headers: list[tuple[str, str]], body: bytes, version: str, length: bool
) -> bytes:
    try:
        return Frame(command or "MESSAGE", headers, body).encode(version, content_length=length)
    except ValueError:  # UsageError: what the encoder refuses, sent raw instead
        lines = "".join(f"{name}:{value}\n" for name, value in headers)
        return f"{command}\n{lines}\n".encode() + body + b"\x00"


_mutation = st.tuples(st.integers(0, 4), st.integers(0, 10_000), st.sampled_from(TOKENS))


def _apply(data: bytes, mutations: list[tuple[int, int, bytes]]) -> bytes:
    buf = bytearray(data)
    for kind, where, token in mutations:
        at = where % (len(buf) + 1)
        if kind == 0:
            buf[at:at] = token
        elif kind == 1:
            del buf[at : at + 1 + where % 7]
        elif kind == 2 and buf:
            buf[at % len(buf)] = where % 256
        elif kind == 3:
            buf[at:at] = token * (1 + where % 64)
        else:
            buf = buf[:at]
    return bytes(buf)


inputs = st.one_of(
    st.builds(_apply, st.sampled_from(SEEDS), st.lists(_mutation, max_size=6)),
    st.builds(b"".join, st.lists(_frame, min_size=1, max_size=4)),
    st.builds(
        lambda seed, frames: seed + b"".join(frames),
        st.sampled_from(SEEDS),
        st.lists(_frame, max_size=3),
    ),
    st.binary(max_size=200),
)


@dataclass
class Tally:
    inputs: int = 0
    failure: tuple[bytes, list[int], int, str] | None = None


def make_fuzz_test(tally: Tally, examples: int, mutants: int) -> Callable[[], None]:
    """A hypothesis test running ``examples`` generated inputs, each with ``mutants``
    byte-mutated offspring, through ``check``."""

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        derandomize=False,
    )
    @given(
        data=inputs,
        cuts=st.lists(st.integers(0, 400), max_size=6),
        pick=st.integers(0, 15),
        rng_seed=st.integers(0, 2**32 - 1),
    )
    def fuzz(data: bytes, cuts: list[int], pick: int, rng_seed: int) -> None:
        rng = random.Random(rng_seed)
        candidate = data
        for round_ in range(mutants + 1):
            try:
                check(candidate, cuts, pick)
            except Exception:
                tally.failure = (candidate, cuts, pick, traceback.format_exc())
                raise
            tally.inputs += 1
            if round_ < mutants:
                candidate = mutate(data if rng.random() < 0.5 else candidate, rng)
                cuts = [rng.randint(0, len(candidate)) for _ in range(rng.randint(0, 5))]
                pick = rng.randrange(16)

    return fuzz


def save_crash(data: bytes) -> Path:
    CRASHES_DIR.mkdir(exist_ok=True)
    path = CRASHES_DIR / f"{hashlib.sha256(data).hexdigest()[:16]}.stomp"
    path.write_bytes(data)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=1_000_000, help="how many, at least")
    parser.add_argument(
        "--batch", type=int, default=5_000, help="generated inputs per hypothesis run"
    )
    parser.add_argument("--mutants", type=int, default=MUTANTS)
    args = parser.parse_args(argv)
    tally = Tally()
    started = time.monotonic()
    # Several hypothesis runs of a bounded size, each with a fresh random seed: one run of
    # a million examples would keep a record of every one of them in memory.
    while tally.inputs < args.inputs:
        try:
            make_fuzz_test(tally, args.batch, args.mutants)()
        except Exception:
            assert tally.failure is not None
            data, cuts, pick, trace = tally.failure
            print(trace, file=sys.stderr)
            print(f"input {data!r}\ncuts {cuts} pick {pick}", file=sys.stderr)
            print(f"saved to {save_crash(data)}", file=sys.stderr)
            return 1
        elapsed = time.monotonic() - started
        print(
            f"{tally.inputs:,} inputs in {elapsed:.0f} s ({tally.inputs / elapsed:,.0f}/s), "
            "only ProtocolError escaped",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
