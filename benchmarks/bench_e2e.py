"""End-to-end throughput, client CPU and latency of stompws next to stomp.py and raw
websocket-client, against one broker in the same run.

Three clients do the same work against the same broker, each in a process of its own (this
script run again with ``--worker``), so that one client's threads, garbage or imports never
slow another, and so that the CPU figure is that process's own ``getrusage``:

* ``stompws``: ``stompws.Client``, messages delivered to a subscription callback;
* ``stomp.py``: stomp.py's ``WSStompConnection`` with a ``ConnectionListener``;
* ``raw-ws``: websocket-client alone with STOMP frames encoded once before the run and
  ``skip_utf8_validation=True``; no STOMP parsing beyond counting frames. This is the
  ceiling for a client built on websocket-client.

Workloads: bodies of 100 B, 10 KiB and 1 MiB; "1conn" is one connection that publishes
and consumes (a sender thread and the reader), "4+4" is four producer and four consumer
connections sharing one queue. A run sends everything as fast as the client can and ends
when the last message arrived: msgs/s is messages / (last arrival - first send). CPU per
message is the worker's user + system time over the same span divided by the messages.
Rounds are interleaved (each round runs every client once, in a rotating order) so that a
slower spell of the machine or the broker hits every client; each figure is the median of
the rounds. Heart-beats are off in these runs (RabbitMQ 3.10's Web STOMP heart-beat monitor
can crash a connection under flow control). The latency run sends at a fixed rate on one
connection and reports the p50/p99 time from send to receive.

Every run uses a fresh ``/queue/stompws-e2e-<uuid>``, so that leftovers of a failed run are
never counted; RabbitMQ keeps these (empty) queues afterwards.

Run: ``make bench`` or ``python benchmarks/bench_e2e.py [--broker rabbitmq|embedded]
[--url URL] [--quick]``. The network is only ever 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

RABBITMQ_URL = "ws://127.0.0.1:15674/ws"
KINDS = ("stompws", "stomp.py", "raw-ws")
SIZES = ("100B", "10KiB", "1MiB")
TOPOLOGIES = ("1conn", "4+4")
SENT_HEADER = "bench-sent"  # time.perf_counter_ns() at send, for the latency run
WORKER_TIMEOUT = 300.0  # seconds one worker may take before the run is called failed
SILENCE_TIMEOUT = 60.0  # seconds without a message before a worker gives up


@dataclass(frozen=True)
class Workload:
    """One run of one client: ``count`` messages in all, spread over the producers."""

    url: str
    size: int
    count: int
    producers: int = 1
    consumers: int = 1
    shared: bool = True  # one connection publishes and consumes
    rate: float = 0.0  # messages per second (latency run); 0: as fast as possible
    login: str = "guest"
    passcode: str = "guest"

    @property
    def host_port_path(self) -> tuple[str, int, str]:
        parts = urlsplit(self.url)
        return parts.hostname or "127.0.0.1", parts.port or 80, parts.path or "/"


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Tally:
    """Counts arrivals across the consumers' threads; ``done`` is set at the last one."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.received = 0
        self.latencies: list[float] = []
        self.last = 0.0
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.failure: str | None = None

    def add(self, count: int = 1, sent_ns: int | None = None) -> None:
        now = time.perf_counter()
        with self.lock:
            self.received += count
            if sent_ns is not None:
                self.latencies.append(now - sent_ns / 1e9)
            self.last = now
            if self.received >= self.expected:
                self.done.set()

    def fail(self, reason: str) -> None:
        self.failure = reason
        self.done.set()

    def wait(self) -> None:
        """Until everything arrived; raises when nothing arrives for SILENCE_TIMEOUT."""
        # Silence counts from the last message or from now, whichever is later: ``last``
        # starts at 0.0, and perf_counter's zero is arbitrary (the boot, on Linux), so a
        # first message slower than one second (stomp.py with 1 MiB bodies on Python 3.10)
        # was once taken for a minute of silence.
        waiting_since = time.perf_counter()
        while not self.done.wait(1.0):
            if time.perf_counter() - max(self.last, waiting_since) > SILENCE_TIMEOUT:
                raise RuntimeError(f"only {self.received} of {self.expected} messages arrived")
        if self.failure is not None:
            raise RuntimeError(self.failure)


def paced(rate: float, count: int) -> Callable[[int], None]:
    """A function that sleeps until message ``n``'s slot at ``rate`` per second."""
    if not rate:
        return lambda n: None
    start = time.perf_counter()

    def wait(n: int) -> None:
        delay = start + n / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)

    return wait


# -- the clients: each opens its connections, then times sending and receiving ----------------
# A client is a function (workload, destination, start) -> Tally: it connects and
# subscribes everything, calls ``start()`` (which takes the starting time and CPU), sends,
# waits for the tally, and disconnects.


def run_stompws(w: Workload, destination: str, start: Callable[[], None]) -> Tally:
    import stompws

    tally = Tally(w.count)
    latency = bool(w.rate)

    def on_message(frame: stompws.Frame) -> None:
        if latency:
            tally.add(sent_ns=int(frame.headers[SENT_HEADER]))
        else:
            tally.add()

    def client() -> stompws.Client:
        c = stompws.Client(w.url, login=w.login, passcode=w.passcode, host="/", heartbeats=(0, 0))
        c.connect()
        return c

    consumers = [client() for _ in range(w.consumers)]
    producers = consumers[:1] if w.shared else [client() for _ in range(w.producers)]
    try:
        for c in consumers:
            c.subscribe(destination, callback=on_message, receipt=True)
        start()
        run_threads(
            lambda c, count: produce(c.send, w, destination, count, tally), producers, w.count
        )
        tally.wait()
        return tally
    finally:
        for c in {id(c): c for c in consumers + producers}.values():
            c.disconnect()


def produce(
    send: Callable[..., object], w: Workload, destination: str, count: int, tally: Tally
) -> None:
    """One producer's loop, the same for stompws and stomp.py (their ``send`` take the same
    arguments here): paced and timestamped when measuring latency, flat out otherwise."""
    body = b"x" * w.size
    wait = paced(w.rate, count)
    try:
        if w.rate:
            for n in range(count):
                wait(n)
                send(destination, body, headers={SENT_HEADER: str(time.perf_counter_ns())})
        else:
            for _ in range(count):
                send(destination, body)
    except Exception as error:
        tally.fail(f"send failed: {error!r}")


def run_stomppy(w: Workload, destination: str, start: Callable[[], None]) -> Tally:
    import stomp

    tally = Tally(w.count)
    latency = bool(w.rate)
    host, port, path = w.host_port_path

    class Counter(stomp.ConnectionListener):  # type: ignore[misc]
        def on_message(self, frame: stomp.utils.Frame) -> None:
            if latency:
                tally.add(sent_ns=int(frame.headers[SENT_HEADER]))
            else:
                tally.add()

        def on_error(self, frame: stomp.utils.Frame) -> None:
            tally.fail(f"ERROR frame: {frame.headers.get('message')}")

    def client() -> stomp.WSStompConnection:
        c = stomp.WSStompConnection([(host, port)], ws_path=path, vhost="/", heartbeats=(0, 0))
        c.set_listener("counter", Counter())
        c.connect(w.login, w.passcode, wait=True)
        return c

    consumers = [client() for _ in range(w.consumers)]
    producers = consumers[:1] if w.shared else [client() for _ in range(w.producers)]
    try:
        for number, c in enumerate(consumers):
            receipt = f"sub-{number}"
            waiter = stomp.listener.WaitingListener(receipt)
            c.set_listener("waiter", waiter)
            c.subscribe(destination, id=str(number), ack="auto", headers={"receipt": receipt})
            waiter.wait_on_receipt()
            c.remove_listener("waiter")
        start()
        run_threads(
            lambda c, count: produce(c.send, w, destination, count, tally), producers, w.count
        )
        tally.wait()
        return tally
    finally:
        for c in {id(c): c for c in consumers + producers}.values():
            c.disconnect()


def run_raw(w: Workload, destination: str, start: Callable[[], None]) -> Tally:
    import websocket

    tally = Tally(w.count)
    latency = bool(w.rate)
    text = websocket.ABNF.OPCODE_TEXT
    marker = f"\n{SENT_HEADER}:".encode()

    def client() -> websocket.WebSocket:
        ws = websocket.create_connection(
            w.url,
            subprotocols=["v12.stomp"],
            skip_utf8_validation=True,
            enable_multithread=True,
        )
        ws.send(
            f"CONNECT\naccept-version:1.2\nhost:/\nlogin:{w.login}\npasscode:{w.passcode}\n"
            "heart-beat:0,0\n\n\x00",
            text,
        )
        if not ws.recv_data()[1].startswith(b"CONNECTED"):
            raise RuntimeError("no CONNECTED")
        return ws

    def read(ws: websocket.WebSocket) -> None:
        try:
            while True:
                _, data = ws.recv_data()
                if not data.startswith(b"MESSAGE"):
                    continue
                if latency:
                    at = data.index(marker) + len(marker)
                    tally.add(sent_ns=int(data[at : data.index(b"\n", at)]))
                else:
                    # RabbitMQ sends one frame per WebSocket message; counting NULs also
                    # copes with a broker that packs several (the bodies hold none).
                    tally.add(data.count(b"\x00"))
        except Exception as error:
            if not tally.done.is_set():
                tally.fail(f"read failed: {error!r}")

    consumers = [client() for _ in range(w.consumers)]
    producers = consumers[:1] if w.shared else [client() for _ in range(w.producers)]
    readers: list[threading.Thread] = []
    try:
        for number, ws in enumerate(consumers):
            ws.send(
                f"SUBSCRIBE\nid:{number}\ndestination:{destination}\nack:auto\nreceipt:r\n\n\x00",
                text,
            )
            if not ws.recv_data()[1].startswith(b"RECEIPT"):
                raise RuntimeError("no RECEIPT for SUBSCRIBE")
            reader = threading.Thread(target=read, args=(ws,), daemon=True)
            reader.start()
            readers.append(reader)
        body = b"x" * w.size
        head = f"SEND\ndestination:{destination}\ncontent-length:{w.size}\n".encode()
        frame = head + b"\n" + body + b"\x00"  # encoded once: the ceiling does no STOMP work

        def produce(ws: websocket.WebSocket, count: int) -> None:
            wait = paced(w.rate, count)
            send = ws.send
            try:
                if latency:
                    for n in range(count):
                        wait(n)
                        stamp = f"{SENT_HEADER}:{time.perf_counter_ns()}\n\n".encode()
                        send(head + stamp + body + b"\x00", text)
                else:
                    for _ in range(count):
                        send(frame, text)
            except Exception as error:
                tally.fail(f"send failed: {error!r}")

        start()
        run_threads(produce, producers, w.count)
        tally.wait()
        return tally
    finally:
        for ws in {id(ws): ws for ws in consumers + producers}.values():
            try:
                ws.send("DISCONNECT\n\n\x00", text)
                ws.sock.shutdown(2)
            except OSError:
                pass
        for reader in readers:
            reader.join(5.0)
        for ws in consumers + producers:
            ws.close()


def run_threads(
    produce: Callable[[object, int], None], producers: list[object], total: int
) -> None:
    """Send ``total`` messages split over ``producers``, each from a thread of its own."""
    share = [total // len(producers) + (i < total % len(producers)) for i in range(len(producers))]
    threads = [
        threading.Thread(target=produce, args=(p, n), daemon=True)
        for p, n in zip(producers, share, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


CLIENTS: dict[str, Callable[[Workload, str, Callable[[], None]], Tally]] = {
    "stompws": run_stompws,
    "stomp.py": run_stomppy,
    "raw-ws": run_raw,
}


def worker(kind: str, workload: Workload) -> dict[str, float]:
    """Run one client on one workload in this process; the figures as a dict."""
    destination = f"/queue/stompws-e2e-{uuid.uuid4().hex}"
    began: list[float] = []

    def start() -> None:
        began[:] = [time.perf_counter(), cpu_seconds()]

    tally = CLIENTS[kind](workload, destination, start)
    # The CPU is read after disconnecting: the disconnect's own cost is small, and
    # reading it at the last arrival would race the reader threads' final work.
    cpu = cpu_seconds() - began[1]
    seconds = tally.last - began[0]
    result = {
        "count": float(tally.received),
        "seconds": seconds,
        "rate": tally.received / seconds,
        "cpu_us": cpu / tally.received * 1e6,
    }
    if tally.latencies:
        ordered = sorted(tally.latencies)
        result["p50_ms"] = ordered[len(ordered) // 2] * 1e3
        result["p99_ms"] = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e3
    return result


# -- the orchestrating process ---------------------------------------------------------------


def spawn(kind: str, workload: Workload) -> dict[str, float]:
    """Run a worker process and return its figures; raises when it fails."""
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--worker",
        kind,
        "--workload",
        json.dumps(workload.__dict__),
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=WORKER_TIMEOUT, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{kind} worker failed ({done.returncode}):\n{done.stderr[-3000:]}")
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def sizes_and_counts(quick: bool, labels: list[str]) -> list[tuple[str, int, int]]:
    """(label, body size, messages): enough messages for a run of a few seconds."""
    if quick:
        table = [("100B", 100, 400), ("10KiB", 10 * 1024, 100), ("1MiB", 1 << 20, 4)]
    else:
        table = [("100B", 100, 40_000), ("10KiB", 10 * 1024, 10_000), ("1MiB", 1 << 20, 200)]
    return [row for row in table if row[0] in labels]


def count_for(kind: str, size: int, count: int) -> int:
    """stomp.py handles large bodies 10-20x slower than the others (it decodes and
    re-joins them in Python): fewer of them keep its runs to a few seconds. The figures are
    rates, so the runs stay comparable."""
    return max(count // 5, 2) if kind == "stomp.py" and size > 1000 else count


def median_of(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def report_throughput(args: argparse.Namespace, url: str) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    kinds = args.clients
    header = f"{'workload':18}" + "".join(f"{kind + ' msg/s':>16}" for kind in kinds)
    header += "".join(f"{kind + ' µs/msg':>16}" for kind in kinds)
    print(header, flush=True)
    for topology in args.topologies:
        for label, size, count in sizes_and_counts(args.quick, args.sizes):
            shared = topology == "1conn"
            workload = Workload(
                url=url,
                size=size,
                count=count,
                producers=1 if shared else 4,
                consumers=1 if shared else 4,
                shared=shared,
            )
            runs: dict[str, list[dict[str, float]]] = {kind: [] for kind in kinds}
            for round_ in range(args.rounds):
                order = kinds[round_ % len(kinds) :] + kinds[: round_ % len(kinds)]
                for kind in order:
                    each = replace(workload, count=count_for(kind, size, count))
                    runs[kind].append(spawn(kind, each))
            rates = {kind: median_of(runs[kind], "rate") for kind in kinds}
            cpus = {kind: median_of(runs[kind], "cpu_us") for kind in kinds}
            line = f"{topology + ', ' + label:18}"
            line += "".join(f"{rates[kind]:16,.0f}" for kind in kinds)
            line += "".join(f"{cpus[kind]:16,.1f}" for kind in kinds)
            print(line, flush=True)
            if "stompws" in kinds:
                ratios = [
                    f"{rates['stompws'] / rates[kind]:.2f}x rate, "
                    f"{cpus['stompws'] / cpus[kind]:.2f}x CPU of {kind}"
                    for kind in kinds
                    if kind != "stompws"
                ]
                print(f"{'':18}stompws: " + "; ".join(ratios), flush=True)
            rows.append(
                {"workload": f"{topology}, {label}", "rate": rates, "cpu_us": cpus, "runs": runs}
            )
    return rows


def report_latency(args: argparse.Namespace, url: str) -> list[dict[str, object]]:
    rate = 1000.0
    count = 300 if args.quick else 5000
    workload = Workload(url=url, size=100, count=count, rate=rate)
    print(f"\nlatency, one connection, 100 B at {rate:,.0f} msg/s, {count} messages", flush=True)
    rows: list[dict[str, object]] = []
    for kind in args.clients:
        figures = spawn(kind, workload)
        print(
            f"  {kind:10} p50 {figures['p50_ms']:7.3f} ms   p99 {figures['p99_ms']:7.3f} ms   "
            f"CPU {figures['cpu_us']:6.1f} µs/msg",
            flush=True,
        )
        rows.append({"client": kind, **figures})
    return rows


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    options.add_argument(
        "--broker",
        choices=("rabbitmq", "embedded"),
        default="rabbitmq",
        help="RabbitMQ Web STOMP on 127.0.0.1:15674 (default) or stompws's embedded broker, "
        "started in this process (the workers are separate processes)",
    )
    options.add_argument("--url", help="any ws:// URL on 127.0.0.1 instead (guest/guest)")
    options.add_argument("--quick", action="store_true", help="a smoke run: few messages")
    options.add_argument("--rounds", type=int, help="interleaved rounds (default 3, quick 1)")
    options.add_argument("--clients", nargs="+", choices=KINDS, default=list(KINDS))
    options.add_argument(
        "--sizes", nargs="+", choices=SIZES, default=list(SIZES), help="body sizes to run"
    )
    options.add_argument(
        "--topologies",
        nargs="+",
        choices=TOPOLOGIES,
        default=list(TOPOLOGIES),
        help="1conn: one connection publishes and consumes; 4+4: four producers, four consumers",
    )
    options.add_argument("--no-latency", action="store_true", help="skip the latency run")
    options.add_argument("--json", metavar="FILE", help="also write every figure to FILE")
    options.add_argument("--worker", choices=KINDS, help=argparse.SUPPRESS)
    options.add_argument("--workload", help=argparse.SUPPRESS)
    args = options.parse_args()

    if args.worker:
        figures = worker(args.worker, Workload(**json.loads(args.workload)))
        print(json.dumps(figures), flush=True)
        return
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3

    broker = None
    if args.url:
        url = args.url
    elif args.broker == "embedded":
        from stompws.testing import Broker

        broker = Broker(tcp=False, heartbeats=(0, 0)).start()
        url = broker.ws_url
    else:
        url = RABBITMQ_URL
    if urlsplit(url).hostname not in ("127.0.0.1", "localhost", "::1"):
        options.error("benchmarks run against a broker on this machine only")
    try:
        print(f"broker {url}; {args.rounds} round(s); medians over rounds", flush=True)
        results: dict[str, object] = {"url": url, "throughput": report_throughput(args, url)}
        if not args.no_latency:
            results["latency"] = report_latency(args, url)
    finally:
        if broker is not None:
            broker.stop()
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=1)


if __name__ == "__main__":
    main()
