"""What many idle stompws connections cost: threads, memory and CPU while nothing but
heart-beats flows.

A worker process (this script again, with ``--worker``) opens ``--connections`` clients with
heart-beats on, each subscribed to a queue of its own that never gets a message, waits for
them to settle, and then measures over ``--seconds``: its own CPU time (``getrusage``) as a
share of one core, its thread count and its resident memory per connection (VmRSS after
connecting minus before, divided by the connections). At the end it checks that every
connection is still up: a heart-beat judged missing would show here as a lost connection.
The broker runs elsewhere (RabbitMQ, or the embedded broker in the parent process), so its
work is not counted.

Run: ``python benchmarks/bench_idle.py [--broker rabbitmq|embedded] [--connections 200]
[--heartbeats 5000] [--seconds 20] [--quick]``. The network is only ever 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
import uuid
from urllib.parse import urlsplit

RABBITMQ_URL = "ws://127.0.0.1:15674/ws"


def rss_bytes() -> int:
    """This process's resident set size now (Linux /proc)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def worker(url: str, connections: int, heartbeat_ms: int, seconds: float) -> dict[str, float]:
    import stompws

    threads_before = threading.active_count()
    rss_before = rss_bytes()
    clients: list[stompws.Client] = []
    lost: list[BaseException | None] = []

    class Watch(stompws.Listener):
        def on_disconnected(self, reason: BaseException | None) -> None:
            lost.append(reason)

    try:
        for _ in range(connections):
            client = stompws.Client(
                url,
                login="guest",
                passcode="guest",
                host="/",
                heartbeats=(heartbeat_ms, heartbeat_ms),
            )
            client.connect()
            client.add_listener(Watch())
            client.subscribe(f"/queue/stompws-idle-{uuid.uuid4().hex}", receipt=True)
            clients.append(client)
        time.sleep(min(2.0, seconds))  # let the connecting settle before measuring
        threads = threading.active_count() - threads_before
        rss = rss_bytes() - rss_before
        cpu_start, wall_start = cpu_seconds(), time.perf_counter()
        time.sleep(seconds)
        cpu = cpu_seconds() - cpu_start
        wall = time.perf_counter() - wall_start
        up = sum(client.is_connected for client in clients)
        lost_while_idle = len(lost)  # before disconnect() reports each end as well
    finally:
        for client in clients:
            client.disconnect()
    return {
        "connections": float(connections),
        "up": float(up),
        "lost": float(lost_while_idle),
        "threads": float(threads),
        "rss_per_connection_kib": rss / connections / 1024,
        "cpu_share_of_one_core": cpu / wall,
        "seconds": wall,
    }


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    options.add_argument("--broker", choices=("rabbitmq", "embedded"), default="rabbitmq")
    options.add_argument("--url", help="any ws:// or stomp:// URL on 127.0.0.1 (guest/guest)")
    options.add_argument("--connections", type=int, default=200)
    options.add_argument("--heartbeats", type=int, default=5000, metavar="MS", help="both ways")
    options.add_argument("--seconds", type=float, default=20.0, help="the measured idle span")
    options.add_argument("--quick", action="store_true", help="20 connections for 3 s")
    options.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = options.parse_args()
    if args.quick:
        args.connections, args.seconds = min(args.connections, 20), min(args.seconds, 3.0)

    if args.worker:
        figures = worker(args.url, args.connections, args.heartbeats, args.seconds)
        print(json.dumps(figures), flush=True)
        return

    broker = None
    if args.url:
        url = args.url
    elif args.broker == "embedded":
        from stompws.testing import Broker

        broker = Broker(tcp=False).start()
        url = broker.ws_url
    else:
        url = RABBITMQ_URL
    if urlsplit(url).hostname not in ("127.0.0.1", "localhost", "::1"):
        options.error("benchmarks run against a broker on this machine only")
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--worker",
        "--url",
        url,
        "--connections",
        str(args.connections),
        "--heartbeats",
        str(args.heartbeats),
        "--seconds",
        str(args.seconds),
    ]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=args.seconds + 300, check=False
        )
    finally:
        if broker is not None:
            broker.stop()
    if done.returncode != 0:
        raise SystemExit(f"the worker failed ({done.returncode}):\n{done.stderr[-3000:]}")
    f = json.loads(done.stdout.strip().splitlines()[-1])
    print(
        f"{f['connections']:.0f} idle connections to {url}, heart-beats {args.heartbeats} ms "
        f"both ways, measured over {f['seconds']:.1f} s:\n"
        f"  CPU {f['cpu_share_of_one_core'] * 100:.2f}% of one core\n"
        f"  threads {f['threads']:.0f} ({f['threads'] / f['connections']:.1f} per connection)\n"
        f"  RSS {f['rss_per_connection_kib']:.0f} KiB per connection\n"
        f"  still connected at the end: {f['up']:.0f}; lost meanwhile: {f['lost']:.0f}"
    )
    if f["up"] != f["connections"] or f["lost"]:
        raise SystemExit("some connections were lost while idle")


if __name__ == "__main__":
    main()
