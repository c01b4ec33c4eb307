"""The WebSocket levers of issue 7, each measured before/after on a local socket pair, so
that no broker's speed or the machine's other load blurs them:

* sending a 100 B frame: websocket-client's ``WebSocket.send`` (frame object, a fresh
  ``os.urandom`` mask key, its own send loop) against stompws's transport (a pool of mask
  keys, one ``sendall``);
* mask keys alone: ``os.urandom(4)`` a frame against one ``os.urandom`` call per 1,024 keys;
* masking a 1 MiB payload: websocket-client's integer XOR against ``bytes.translate``;
* receiving 100 B messages: websocket-client's ``recv_data`` against stompws's buffered
  reader (what the reader thread does per message, without the STOMP parser).

"Before" is websocket-client's own code, which stompws's transport called until then.

Run: ``python benchmarks/bench_levers.py [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import websocket

from stompws.sockets import Stream
from stompws.transport import parse_url
from stompws.ws_framing import MaskKeys, encode_frame
from stompws.ws_transport import WebSocketTransport

FRAME_100 = b"SEND\ndestination:/queue/bench\ncontent-length:100\n\n" + b"x" * 100 + b"\x00"


def _ours(sock: socket.socket) -> WebSocketTransport:
    """stompws's transport on ``sock``, as after the handshake."""
    url = "ws://127.0.0.1/ws"
    return WebSocketTransport(parse_url(url), Stream(sock, write_timeout=30, where=url), None)


def drain(sock: socket.socket) -> threading.Thread:
    """A peer that reads and drops everything until the socket closes."""

    def run() -> None:
        while sock.recv(1 << 20):
            pass

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def best(run: Callable[[], float], rounds: int) -> float:
    """The lowest time per unit of ``rounds`` runs (the least disturbed)."""
    return min(run() for _ in range(rounds))


def per_call(function: Callable[[], Any], count: int) -> Callable[[], float]:
    def run() -> float:
        start = time.perf_counter()
        for _ in range(count):
            function()
        return (time.perf_counter() - start) / count

    return run


def send_levers(count: int, rounds: int) -> None:
    ours_sock, peer = socket.socketpair()
    theirs_sock, peer2 = socket.socketpair()
    readers = [drain(peer), drain(peer2)]
    theirs = websocket.WebSocket(skip_utf8_validation=True, enable_multithread=True)
    theirs.sock, theirs.connected = theirs_sock, True
    ours = _ours(ours_sock)
    text = websocket.ABNF.OPCODE_TEXT
    before = best(per_call(lambda: theirs.send(FRAME_100, text), count), rounds)
    after = best(per_call(lambda: ours.send(FRAME_100), count), rounds)
    report("send a 100 B frame", before, after)
    ours.close()
    theirs_sock.close()
    for reader in readers:
        reader.join(5)

    keys = MaskKeys()
    before = best(per_call(lambda: os.urandom(4), count), rounds)
    after = best(per_call(keys.take, count), rounds)
    report("mask key", before, after)

    big = b"x" * (1 << 20)
    key = os.urandom(4)
    few = max(count // 500, 5)
    before = best(per_call(lambda: websocket.ABNF.mask(key, big), few), rounds)
    after = best(per_call(lambda: encode_frame(text, big, key), few), rounds)
    report("mask a 1 MiB payload", before, after)


def recv_levers(count: int, rounds: int) -> None:
    # Unmasked server frames, as a broker sends them.
    assert 126 <= len(FRAME_100) < 0x10000  # so the 16-bit length form
    message = bytes((0x81, 126)) + len(FRAME_100).to_bytes(2, "big") + FRAME_100

    def feed(sock: socket.socket) -> threading.Thread:
        def run() -> None:
            sock.sendall(message * count)
            sock.shutdown(socket.SHUT_WR)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    def theirs() -> float:
        a, b = socket.socketpair()
        ws = websocket.WebSocket(skip_utf8_validation=True, enable_multithread=True)
        ws.sock, ws.connected = a, True
        writer = feed(b)
        start = time.perf_counter()
        for _ in range(count):
            ws.recv_data()
        elapsed = time.perf_counter() - start
        writer.join()
        a.close()
        b.close()
        return elapsed / count

    def ours() -> float:
        a, b = socket.socketpair()
        transport = _ours(a)
        writer = feed(b)
        start = time.perf_counter()
        got = 0
        while got < count * len(FRAME_100):
            got += len(transport.recv())
        elapsed = time.perf_counter() - start
        writer.join()
        transport.close()
        b.close()
        return elapsed / count

    report("receive a 100 B message", best(theirs, rounds), best(ours, rounds))


def report(name: str, before: float, after: float) -> None:
    print(
        f"{name:36} before {before * 1e6:9.2f} µs   after {after * 1e6:9.2f} µs   "
        f"{before / after:5.1f}x",
        flush=True,
    )


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    options.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = options.parse_args()
    count = 2_000 if args.quick else 50_000
    rounds = 2 if args.quick else 5
    send_levers(count, rounds)
    recv_levers(count, rounds)


if __name__ == "__main__":
    main()
