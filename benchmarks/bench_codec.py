"""Parse and encode speed of stompws's codec next to stomp.py's, measured in the same run.

stomp.py splits the byte stream into frames in its transport and then calls
``stomp.utils.parse_frame`` on each; we time that call (it gets a frame already cut out,
which flatters it). stompws's ``FrameParser.feed`` is timed doing the whole job: one frame
per call, as frames arrive one per WebSocket message, and a chunk of 100 frames per call,
as they arrive over TCP. Encoding: stomp.py's ``convert_frame`` + ``pack`` against
``Frame.encode``. Each figure is the best of several rounds, and the rounds of the figures
compared in a line are interleaved, so that a slower spell of the machine hits both sides.

Run: ``make bench`` or ``python benchmarks/bench_codec.py [--quick]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import stomp.utils as stomp_utils

from stompws import Frame, FrameParser

RABBITMQ_MESSAGE = (
    b"MESSAGE\nsubscription:sub-0\ndestination:/queue/bench\n"
    b"message-id:T_sub-0@@session-Xy8kq3bV2o9Q1aZlw5rN2A@@1\nredelivered:false\n"
    b"content-length:80\n\n" + b"r" * 80 + b"\x00\n"
)
ACTIVEMQ_MESSAGE = (
    b"MESSAGE\nmessage-id:ID\\cbench-host-41837-1700000000000-3\\c1\\c1\\c1\\c1\n"
    b"destination:/queue/bench\\cone\nsubscription:sub\\c0\n"
    b"correlation-id:req\\c42\nreply-to:/temp-queue/ID\\cabc\nJMSXUserID:us\\\\er\n"
    b"content-length:64\n\n" + b"a" * 64 + b"\x00\n"
)
LARGE_MESSAGE = Frame("MESSAGE", {"destination": "/queue/big"}, bytes(1 << 20)).encode("1.2")
LARGE_WITHOUT_LENGTH = Frame("MESSAGE", {"destination": "/queue/big"}, b"t" * (1 << 20)).encode(
    "1.2", content_length=False
)


def best_rates(runs: list[Callable[[], int]], rounds: int) -> list[float]:
    """Units per second of each run, the fastest (least disturbed) of ``rounds`` rounds in
    which every run takes its turn."""
    best = [0.0] * len(runs)
    for _ in range(rounds):
        for index, run in enumerate(runs):
            start = time.perf_counter()
            units = run()
            elapsed = time.perf_counter() - start
            best[index] = max(best[index], units / elapsed)
    return best


def ours_one_per_feed(wire: bytes, count: int) -> Callable[[], int]:
    def run() -> int:
        parser = FrameParser("1.2")
        for _ in range(count):
            frames = parser.feed(wire)
            frames[0].headers  # noqa: B018 - what a consumer reads first
        return count

    return run


def ours_batched(wire: bytes, count: int) -> Callable[[], int]:
    chunk = wire * 100

    def run() -> int:
        parser = FrameParser("1.2")
        for _ in range(count // 100):
            parser.feed(chunk)
        return count // 100 * 100

    return run


def stomppy_parse(wire: bytes, count: int) -> Callable[[], int]:
    frame_only = wire[: wire.rindex(b"\x00")]

    def run() -> int:
        parse = stomp_utils.parse_frame
        for _ in range(count):
            parse(frame_only).headers  # noqa: B018
        return count

    return run


def ours_encode(count: int) -> Callable[[], int]:
    headers = {"destination": "/queue/bench", "content-type": "text/plain", "persistent": "true"}
    body = b"e" * 100

    def run() -> int:
        for _ in range(count):
            Frame("SEND", headers, body).encode("1.2")
        return count

    return run


def stomppy_encode(count: int) -> Callable[[], int]:
    headers = {"destination": "/queue/bench", "content-type": "text/plain", "persistent": "true"}
    body = b"e" * 100

    def run() -> int:
        for _ in range(count):
            frame = stomp_utils.Frame("SEND", dict(headers, **{"content-length": 100}), body)
            stomp_utils.pack(stomp_utils.convert_frame(frame))
        return count

    return run


def large_in_chunks(wire: bytes, chunk: int, repeat: int) -> Callable[[], int]:
    pieces = [wire[i : i + chunk] for i in range(0, len(wire), chunk)]

    def run() -> int:
        parser = FrameParser("1.2", max_frame_size=64 << 20)
        for _ in range(repeat):
            for piece in pieces:
                parser.feed(piece)
        return repeat * len(wire)

    return run


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    options.add_argument("--quick", action="store_true", help="fewer rounds, for CI smoke runs")
    args = options.parse_args()
    count = 5_000 if args.quick else 50_000
    rounds = 2 if args.quick else 5

    print(f"{'workload':44} {'stompws':>12} {'stomp.py':>12} {'ratio':>7}")
    for name, wire in (
        (f"RabbitMQ-style MESSAGE ({len(RABBITMQ_MESSAGE)} B, 5 headers)", RABBITMQ_MESSAGE),
        (f"ActiveMQ-style MESSAGE ({len(ACTIVEMQ_MESSAGE)} B, 7 escaped)", ACTIVEMQ_MESSAGE),
    ):
        theirs, one, batched = best_rates(
            [stomppy_parse(wire, count), ours_one_per_feed(wire, count), ours_batched(wire, count)],
            rounds,
        )
        ratio = one / theirs
        print(f"parse {name:38} {one:10,.0f}/s {theirs:10,.0f}/s {ratio:6.1f}x  one frame a feed")
        print(f"{'':44} {batched:10,.0f}/s {'':>12} {batched / theirs:6.1f}x  100 frames a feed")

    mib = 1 << 20
    big_count = 20 if args.quick else 200
    theirs, ours = best_rates(
        [stomppy_parse(LARGE_MESSAGE, big_count), ours_one_per_feed(LARGE_MESSAGE, big_count)],
        rounds,
    )
    print(
        f"parse {'1 MiB body, one piece':38} {ours * len(LARGE_MESSAGE) / 1e9:8.2f} GB/s "
        f"{theirs * len(LARGE_MESSAGE) / 1e9:8.2f} GB/s {ours / theirs:6.1f}x"
    )
    for name, wire in (
        ("1 MiB body in 4 KiB chunks", LARGE_MESSAGE),
        ("same, without content-length", LARGE_WITHOUT_LENGTH),
    ):
        whole, chunked = best_rates(
            [
                large_in_chunks(wire, len(wire), big_count),
                large_in_chunks(wire, 4096, big_count // 4 or 1),
            ],
            rounds,
        )
        print(
            f"parse {name:38} {chunked / 1e9:8.2f} GB/s "
            f"{'':>12} {chunked / whole:6.2f}x of one piece"
        )
    sixteen = Frame("MESSAGE", {}, bytes(16 * mib)).encode("1.2")
    whole, chunked = best_rates(
        [large_in_chunks(sixteen, len(sixteen), 2), large_in_chunks(sixteen, 4096, 1)], rounds
    )
    print(
        f"parse {'16 MiB body in 4 KiB chunks':38} {chunked / 1e9:8.2f} GB/s "
        f"{'':>12} {chunked / whole:6.2f}x of one piece ({whole / 1e9:.2f} GB/s)"
    )

    theirs, ours = best_rates([stomppy_encode(count), ours_encode(count)], rounds)
    name = "SEND, 3 headers, 100 B body"
    print(f"encode {name:37} {ours:10,.0f}/s {theirs:10,.0f}/s {ours / theirs:6.1f}x")


if __name__ == "__main__":
    main()
