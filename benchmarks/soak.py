"""A soak of stompws: steady traffic for minutes, a network cut every minute, and a verdict.

The verdict says whether the client's memory, file descriptors or threads creep upward,
whether a confirmed message was lost, and whether a call ran past its timeout.

What runs where:

* this process starts the broker side: RabbitMQ (``make brokers``), or the embedded broker
  with ``--broker embedded``, and a ``FaultProxy`` (tests/faults/proxy.py) in front of its
  WebSocket and its TCP port, and cuts both proxies every ``--cut-every`` seconds;
* a worker process (benchmarks/soak_worker.py) runs the clients and their traffic, two
  connections per transport with ``stompws.Reconnect``, heart-beats, receipts,
  ``client-individual`` and ``client`` acks and subscribe/unsubscribe churn, and samples
  its own RSS, fds, threads, msgs/s and p99 latency every ``--sample-every`` seconds. The
  proxies' threads and buffers are therefore not in what is measured.

The samples go to a CSV (``--csv``, under /tmp by default) as they come, and at the end to
a PNG (``--png``). The run FAILS (exit status 1, the reasons on the last lines) when:

* RSS, fds or threads trend upward: the least-squares slope over the samples after the
  warm-up is above its bound (soak_trend.py says which bounds and why);
* a message whose receipt was confirmed never arrived, or a message could not be confirmed
  by the end (the producer resends what was unconfirmed, as an application would);
* a call ran past the bound its documentation promises, or gave up at its own deadline
  (a receipt, a connect); a harness thread died or did not end.

Run: ``make soak`` (``SOAK_MINUTES=2 make soak``), or ``python benchmarks/soak.py
[--minutes 10] [--broker rabbitmq|embedded] [--seconds S --sample-every S --cut-every S]``.
The network is only ever 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parents[1]
# The fault proxy and the brokers' ports are the tests' own; one copy of each.
sys.path.insert(0, str(REPO))

from soak_plot import plot  # noqa: E402
from soak_trend import Trend, trends  # noqa: E402

from tests.faults.proxy import FaultProxy  # noqa: E402
from tests.support import brokers as real  # noqa: E402

WORKER = Path(__file__).resolve().parent / "soak_worker.py"
DEFAULT_CSV = Path(tempfile.gettempdir()) / "stompws-soak.csv"
DEFAULT_PNG = Path(__file__).resolve().parent / "soak.png"
COLUMNS = (
    "t",
    "rss_kib",
    "fds",
    "threads",
    "py_objects",
    "garbage",
    "py_blocks",
    "py_heap_kib",
    "msgs_per_s",
    "p50_ms",
    "p99_ms",
    "sent",
    "confirmed",
    "received",
    "duplicates",
    "resent",
    "reconnects",
    "cuts",
    "overruns",
    "timeouts",
)
SHORT_RUN = 600.0  # seconds: shorter runs judge RSS inside its warm-up (soak_trend.py)
READY_TIMEOUT = 60.0  # seconds for the worker to connect and subscribe everything
EXIT_TIMEOUT = 60.0  # seconds past the drain for the worker to report and end


def default_minutes() -> float:
    return float(os.environ.get("SOAK_MINUTES") or 10)


def broker_side(kind: str, stack: ExitStack) -> dict[str, str]:
    """The broker's URLs by transport name, starting the embedded broker if asked."""
    if kind == "embedded":
        from stompws.testing import Broker

        # Tolerance 4, as the fault tests use: the embedded broker counts the client's
        # silence from its own CONNECTED, and the proxy adds a round trip to the first beat.
        broker = Broker(heartbeat_tolerance=4.0).start()
        stack.callback(broker.stop)
        return {"ws": broker.ws_url, "tcp": broker.tcp_url}
    for name, port in (
        ("RabbitMQ Web STOMP", real.RABBITMQ_WS_PORT),
        ("RabbitMQ STOMP", real.RABBITMQ_STOMP_PORT),
    ):
        problem = real.probe(name, real.HOST, port)
        if problem is not None:
            raise SystemExit(f"soak: {problem} (make brokers)")
    return {"ws": real.RABBITMQ_WS_URL, "tcp": real.RABBITMQ_TCP_URL}


def proxied(urls: dict[str, str], stack: ExitStack) -> tuple[dict[str, str], list[FaultProxy]]:
    """A FaultProxy in front of each URL: the proxied URLs, and the proxies."""
    from urllib.parse import urlsplit

    proxies = []
    through = {}
    for name, url in urls.items():
        parts = urlsplit(url)
        assert parts.hostname is not None and parts.port is not None
        proxy = stack.enter_context(FaultProxy(parts.hostname, parts.port))
        proxies.append(proxy)
        through[name] = proxy.url_for(url)
    return through, proxies


def forget_closed_links(proxy: FaultProxy) -> None:
    """A proxy keeps every byte it forwarded; a 10-minute run need not keep them in memory."""
    for record in proxy.records:
        if record.closed.is_set():
            record.up.clear()
            record.down.clear()


@contextmanager
def worker_process(command: list[str], log: IO[str]) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def lines_of(process: subprocess.Popen[str]) -> queue.Queue[dict[str, Any] | None]:
    """The worker's JSON lines, read by a thread so that the cuts keep their schedule; None
    at the end of its output."""
    found: queue.Queue[dict[str, Any] | None] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            try:
                found.put(json.loads(line))
            except json.JSONDecodeError:
                print(f"soak: the worker said: {line.rstrip()}", file=sys.stderr)
        found.put(None)

    threading.Thread(target=read, name="soak-worker-output", daemon=True).start()
    return found


def progress(row: dict[str, Any]) -> str:
    def shown(value: object, unit: str) -> str:
        return "-" if value is None else f"{value}{unit}"

    return (
        f"  {row['t']:6.0f} s  RSS {row['rss_kib'] / 1024:6.1f} MiB  fds {row['fds']:3d}  "
        f"threads {row['threads']:3d}  {shown(row['msgs_per_s'], ' msgs/s'):>13}  "
        f"p99 {shown(row['p99_ms'], ' ms'):>10}  cuts {row['cuts']}  "
        f"reconnects {row['reconnects']}"
    )


def main() -> int:
    options = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    options.add_argument(
        "--minutes", type=float, default=default_minutes(), help="default: $SOAK_MINUTES or 10"
    )
    options.add_argument("--seconds", type=float, help="the run's length; overrides --minutes")
    options.add_argument("--sample-every", type=float, default=10.0, metavar="S")
    options.add_argument("--cut-every", type=float, default=60.0, metavar="S")
    options.add_argument(
        "--warmup",
        type=float,
        metavar="S",
        help="seconds left out of the trend; default: the first half (soak_trend.py says why)",
    )
    options.add_argument("--broker", choices=("rabbitmq", "embedded"), default="rabbitmq")
    options.add_argument("--rate", type=float, default=50.0, help="messages/s to each queue")
    options.add_argument("--heartbeats", type=int, default=2000, metavar="MS", help="both ways")
    options.add_argument("--churn-every", type=float, default=1.0, metavar="S")
    options.add_argument("--drain-timeout", type=float, default=60.0, metavar="S")
    options.add_argument("--connect-timeout", type=float, default=5.0, metavar="S")
    options.add_argument("--write-timeout", type=float, default=5.0, metavar="S")
    options.add_argument("--receipt-timeout", type=float, default=10.0, metavar="S")
    options.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    options.add_argument("--png", type=Path, default=DEFAULT_PNG)
    options.add_argument(
        "--trace-memory",
        action="store_true",
        help="the worker reports (in its log) where the memory it gained was allocated",
    )
    options.add_argument("--log", type=Path, help="the worker's stderr; default: beside the CSV")
    args = options.parse_args()
    seconds = args.seconds if args.seconds is not None else args.minutes * 60
    if seconds < 3 * args.sample_every:
        options.error("the run must last at least three sampling periods")
    warmup = seconds / 2 if args.warmup is None else args.warmup
    log_path = args.log or args.csv.with_suffix(".log")
    summary_path = args.csv.with_suffix(".json")

    rows: list[dict[str, Any]] = []
    cuts: list[float] = []
    summary: dict[str, Any] | None = None
    problems: list[str] = []
    with ExitStack() as stack:
        direct = broker_side(args.broker, stack)
        urls, proxies = proxied(direct, stack)
        command = [
            sys.executable,
            str(WORKER),
            *(f"--url={name}={url}" for name, url in urls.items()),
            f"--seconds={seconds}",
            f"--sample-every={args.sample_every}",
            f"--rate={args.rate}",
            f"--heartbeats={args.heartbeats}",
            # The client's own tolerance: the broker's beats cross the proxy too.
            "--heartbeat-tolerance=3.0",
            f"--churn-every={args.churn_every}",
            f"--drain-timeout={args.drain_timeout}",
            f"--connect-timeout={args.connect_timeout}",
            f"--write-timeout={args.write_timeout}",
            f"--receipt-timeout={args.receipt_timeout}",
            *(["--trace-memory"] if args.trace_memory else []),
        ]
        print(
            f"soak: {seconds:g} s against {args.broker} ({', '.join(direct.values())}) through "
            f"fault proxies, a cut every {args.cut_every:g} s, a sample every "
            f"{args.sample_every:g} s; CSV {args.csv}, worker log {log_path}",
            flush=True,
        )
        log = stack.enter_context(open(log_path, "w"))
        out = stack.enter_context(open(args.csv, "w", newline=""))
        table = csv.DictWriter(out, fieldnames=COLUMNS, extrasaction="ignore")
        table.writeheader()
        process = stack.enter_context(worker_process(command, log))
        found = lines_of(process)
        started: float | None = None
        next_cut = 0.0
        line: dict[str, Any] | None = {}
        ready_by = time.monotonic() + READY_TIMEOUT
        give_up = ready_by + seconds + args.drain_timeout + EXIT_TIMEOUT
        while True:
            now = time.monotonic()
            if now > give_up or (started is None and now > ready_by):
                problems.append("the worker hung: no summary in time (killed it)")
                break
            wait = 1.0
            if started is not None and next_cut < started + seconds:
                wait = min(wait, max(next_cut - now, 0.0))
            try:
                line = found.get(timeout=wait)
            except queue.Empty:
                line = {}
            now = time.monotonic()
            if started is not None and now >= next_cut and next_cut < started + seconds:
                for proxy in proxies:
                    proxy.cut()
                    forget_closed_links(proxy)
                cuts.append(now - started)
                next_cut += args.cut_every
            if line is None:
                break
            event = line.get("event")
            if event == "ready":
                started = time.monotonic()
                # Half a sampling period off the samples: a sample taken at the moment of
                # a cut would catch every connection mid-reconnect, at every cut alike.
                next_cut = started + args.cut_every + args.sample_every / 2
            elif event == "sample":
                line["cuts"] = len(cuts)
                rows.append(line)
                table.writerow(line)
                out.flush()
                print(progress(line), flush=True)
            elif event == "summary":
                summary = line
                break
        try:
            # A hung worker gets no more time: leaving the stack kills it.
            process.wait(0 if summary is None and line is not None else EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            if summary is not None:
                problems.append("the worker did not exit after its summary (killed it)")
        if process.returncode not in (0, None):
            problems.append(f"the worker exited with status {process.returncode} (see {log_path})")

    return judge(args, seconds, warmup, rows, cuts, summary, problems, summary_path)


def judge(
    args: argparse.Namespace,
    seconds: float,
    warmup: float,
    rows: list[dict[str, Any]],
    cuts: list[float],
    summary: dict[str, Any] | None,
    problems: list[str],
    summary_path: Path,
) -> int:
    found: list[Trend] = []
    if rows:
        try:
            found = trends(
                [float(row["t"]) for row in rows],
                {
                    name: [float(row[name]) for row in rows]
                    for name in ("rss_kib", "fds", "threads")
                },
                warmup,
            )
        except ValueError as error:
            problems.append(f"no trend could be judged: {error}")
    else:
        problems.append("no sample came from the worker")
    problems += [
        f"{trend.name} trends upward: {trend.describe()}" for trend in found if trend.rising
    ]
    if seconds < SHORT_RUN and any(t.rising and t.name == "rss_kib" for t in found):
        problems.append(
            f"(a run under {SHORT_RUN / 60:g} minutes judges RSS while it is still levelling "
            "off, soak_trend.py: run the full soak before calling this a leak)"
        )

    print("soak: figures")
    if rows:
        first, last = rows[0], rows[-1]
        for name, unit, scale in (("rss_kib", "MiB", 1 / 1024), ("fds", "", 1), ("threads", "", 1)):
            print(
                f"  {name:8} start {first[name] * scale:7.1f} {unit:3} end "
                f"{last[name] * scale:7.1f} {unit}"
            )
    for trend in found:
        print(f"  {trend.describe()}")
    # Not judged, shown so that nobody has to trust the warm-up: the same fit from the
    # first cut on (the memory then still finding its level, soak_trend.py).
    early = min(args.cut_every + 3 * args.sample_every, warmup)
    if rows and early < warmup:
        with contextlib.suppress(ValueError):
            for trend in trends(
                [float(row["t"]) for row in rows],
                {
                    name: [float(row[name]) for row in rows]
                    for name in ("rss_kib", "fds", "threads")
                },
                early,
            ):
                print(f"  (from {early:g} s, not judged) {trend.describe()}")
    rates = [row["msgs_per_s"] for row in rows if row.get("msgs_per_s") is not None]
    p99s = [row["p99_ms"] for row in rows if row.get("p99_ms") is not None]
    if rates:
        print(
            f"  msgs/s   median {statistics.median(rates):.0f} "
            f"(min {min(rates):.0f}, max {max(rates):.0f})"
        )
    if p99s:
        print(
            f"  p99 ms   median of the windows {statistics.median(p99s):.1f}, "
            f"worst window {max(p99s):.1f} (a window with a cut holds the reconnect)"
        )

    if summary is None:
        problems.append("the worker gave no summary")
    else:
        problems += check_summary(summary, cuts)
        summary_path.write_text(json.dumps({"cuts": cuts, **summary}, indent=2) + "\n")
    if rows:
        verdict = "PASSED" if not problems else "FAILED"
        try:
            plot(
                args.png,
                rows,
                cuts,
                warmup,
                found,
                f"stompws soak: {seconds / 60:.3g} min against {args.broker} (WebSocket and "
                f"TCP, 4 connections), {len(cuts)} cuts: {verdict}",
            )
            print(f"soak: plot {args.png}, samples {args.csv}, summary {summary_path}")
        except ImportError:
            problems.append("matplotlib is missing: pip install matplotlib (no plot made)")
    if problems:
        print("soak: FAILED")
        for problem in problems:
            print(f"  - {problem}")
        return 1
    print("soak: PASSED")
    return 0


def check_summary(summary: dict[str, Any], cuts: list[float]) -> list[str]:
    """Print the worker's counts; what in them fails the run."""
    problems = [f"the worker: {failure}" for failure in summary.get("failures", [])]
    lanes: dict[str, dict[str, Any]] = summary.get("lanes", {})
    if not lanes:
        return problems

    def total(key: str) -> int:
        values = [lane[key] for lane in lanes.values()]
        return sum(sum(v.values()) if isinstance(v, dict) else v for v in values)

    sent = sum(lane["sent_per_queue"] for lane in lanes.values()) * 2
    lost, unconfirmed = total("lost"), total("unconfirmed")
    reconnects = total("reconnects")
    losses: dict[str, int] = {}
    for lane in lanes.values():
        for counts in lane["losses"].values():
            for reason, count in counts.items():
                losses[reason] = losses.get(reason, 0) + count
    print(
        f"  messages sent {sent}, confirmed {total('confirmed')}, received "
        f"{total('received')} (unique), lost {lost}, unconfirmed at the end {unconfirmed}, "
        f"duplicates {total('duplicates')}, resent {total('resent')}, acks refused after a "
        f"loss {total('refused_acks')}; drained in {summary.get('drained_in_s')} s"
    )
    print(
        f"  reconnects {reconnects} for {len(cuts)} cuts of {2 * len(lanes)} connections; "
        f"what ended connections: {losses or 'nothing'}; churned subscriptions "
        f"{total('churns')} (topic messages {total('topic_delivered')})"
    )
    if summary.get("rss_after_trim_kib") is not None:
        print(
            f"  RSS at the end {summary['rss_end_kib'] / 1024:.1f} MiB, after malloc_trim "
            f"{summary['rss_after_trim_kib'] / 1024:.1f} MiB (what the C allocator kept free)"
        )
    for note in summary.get("notes", []):
        print(f"  note: {note}")
    longest = {kind: stats["longest_s"] for kind, stats in summary.get("calls", {}).items()}
    print(f"  longest call per kind (s): {longest}")
    if lost:
        problems.append(f"{lost} confirmed messages were lost (never delivered)")
    if unconfirmed:
        problems.append(
            f"{unconfirmed} messages were never confirmed: the producer did not recover"
        )
    if summary.get("overruns"):
        examples = "; ".join(summary.get("overrun_examples", []))
        problems.append(f"{summary['overruns']} calls ran past their bound: {examples}")
    if summary.get("timeouts"):
        examples = "; ".join(summary.get("timeout_examples", []))
        problems.append(f"{summary['timeouts']} calls gave up at their timeout: {examples}")
    if summary.get("stuck_threads"):
        problems.append(f"harness threads did not end: {summary['stuck_threads']}")
    return problems


if __name__ == "__main__":
    sys.exit(main())
