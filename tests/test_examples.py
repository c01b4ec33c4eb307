"""The examples and ``stompws bench``, run the way users run them.

Each example runs in-process against the embedded broker it starts itself (so the
leaked-thread check of conftest.py covers it) and once more as ``python examples/NAME.py``;
request_reply also runs against the real RabbitMQ, where replies come over /temp-queue/.
"""

from __future__ import annotations

import importlib.util
import io
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from stompws import Frame, ReceiveTimeout
from stompws.__main__ import main as cli
from stompws.bench import BenchSettings, Progress, _Consumer, _Tally, percentile, run_bench
from stompws.testing import Broker

from .fakes import Peer, fake_broker, free_port
from .support import brokers as real
from .support.ci import need

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

# What each example must say when it works; each line is printed only after the step it
# describes succeeded.
EXPECTED = {
    "quickstart": ["connected: STOMP 1.2", "after COMMIT", "disconnected cleanly"],
    "chat": [
        "alice heard 4 messages:",
        "bob heard 4 messages:",
        "  bob: hi alice, I got 'hello bob'",
        "  alice: how are you?",
        "both left the room",
    ],
    "work_queue": [
        "carol takes task-1 and crashes before acknowledging it",
        "does task-1 (redelivered)",
        "all 6 tasks done, task-1 too",
    ],
    "transactions": [
        "first to arrive: 'outside the transaction'",
        "after COMMIT: ['debit 10', 'credit 10']",
        "after ABORT only this arrives: 'after the abort'",
        "and only this arrives: 'after the exception'",
        "acknowledged it in a committed transaction",
    ],
    "request_reply": [
        ", a queue it subscribed to",
        "caller: 'ping' -> 'PING'",
        "caller: 'bye' -> 'BYE'",
        "3 requests answered",
    ],
    "reconnect": [
        "sent and received 'before any trouble' (session session-1)",
        "connection lost: ",
        "sent and received 'after the cut'",
        "no heart-beat from the broker: it is declared dead",
        "sent and received 'after the silence'",
        "disconnected after ",
    ],
    "tls": [
        "with the system's CAs only: TLS certificate of 127.0.0.1 refused",
        "STOMP 1.2, sent and received 'sent over TLS'",
        "done",
    ],
}


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_example_is_tested() -> None:
    assert sorted(path.stem for path in EXAMPLES.glob("*.py")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs_in_process(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    if name == "tls" and not _has_openssl():
        need("the tls example needs the openssl command")
    module = load(name)
    main: Callable[..., int] = module.main
    before = {thread.ident for thread in threading.enumerate()}

    code = main() if name == "quickstart" else main([])

    out = capsys.readouterr().out
    assert code == 0, out
    missing = [line for line in EXPECTED[name] if line not in out]
    assert not missing, f"{name} did not say {missing}; it said:\n{out}"
    # The examples' own helper threads (the TLS terminator's) end too.
    left = [t.name for t in threading.enumerate() if t.ident not in before and t.is_alive()]
    assert not left, left


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs_as_a_script(name: str) -> None:
    if name == "tls" and not _has_openssl():
        need("the tls example needs the openssl command")
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert EXPECTED[name][-1] in done.stdout
    assert done.stderr == ""


def _has_openssl() -> bool:
    import shutil

    return shutil.which("openssl") is not None


# -- request_reply against RabbitMQ ------------------------------------------------------------

RABBITMQ = {
    "ws": (f"ws://guest:guest@{real.HOST}:{real.RABBITMQ_WS_PORT}/ws", real.RABBITMQ_WS_PORT),
    "tcp": (
        f"stomp://guest:guest@{real.HOST}:{real.RABBITMQ_STOMP_PORT}",
        real.RABBITMQ_STOMP_PORT,
    ),
}


@pytest.fixture
def rabbitmq(request: pytest.FixtureRequest) -> str:
    url, port = RABBITMQ[request.param]
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2.0):
            pass
    except OSError as error:
        need(
            f"RabbitMQ is not reachable on 127.0.0.1:{port} ({error}); "
            "start it with scripts/brokers/up.sh"
        )
    return url


@pytest.mark.integration
@pytest.mark.parametrize("rabbitmq", sorted(RABBITMQ), indirect=True)
def test_request_reply_over_a_rabbitmq_temp_queue(
    rabbitmq: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert load("request_reply").main([rabbitmq]) == 0

    out = capsys.readouterr().out
    assert "caller: replies to /temp-queue/replies, received by a listener" in out
    # RabbitMQ hands the service a name of its own for the caller's temporary queue, and
    # delivers the reply under a subscription the caller never made.
    assert "answering on /reply-queue/" in out
    for text in ("PING", "HELLO", "BYE"):
        assert f"-> '{text}'" in out
    assert out.count("subscription /temp-queue/replies)") == 3
    assert "3 requests answered" in out
    assert "guest:guest" not in out


# -- stompws bench -----------------------------------------------------------------------------


@pytest.fixture
def broker() -> Iterator[Broker]:
    # One per test: the broker's threads for a connection end just after the client's, and
    # only stop() waits for them, which the leaked-thread check needs.
    with Broker() as embedded:
        yield embedded


@pytest.mark.parametrize("transport", ["ws", "tcp"])
def test_bench_counts_every_message_on_a_queue(broker: Broker, transport: str) -> None:
    url = broker.ws_url if transport == "ws" else broker.tcp_url
    settings = BenchSettings(url, producers=2, consumers=3, messages=40, size=64)

    result = run_bench(settings)

    assert (result.sent, result.received, result.duplicates) == (80, 80, 0)
    assert len(result.latencies) == 80
    assert result.latencies == sorted(result.latencies)
    assert result.latencies[0] > 0 and result.latencies[-1] < 10
    assert result.send_seconds > 0 and result.receive_seconds > 0
    lines = result.lines()
    assert lines[0].startswith("2 producer(s), 3 consumer(s), 40 message(s) of 64 bytes each")
    assert "received 80 of 80 messages" in lines[2]
    assert lines[3].startswith("latency p50 ")
    assert broker.queue_depth(settings.destination) == 0


def test_bench_on_a_topic_gives_every_consumer_every_message(broker: Broker) -> None:
    settings = BenchSettings(broker.tcp_url, consumers=3, messages=20, destination="/topic/b")

    result = run_bench(settings)

    assert settings.expected == 60
    assert (result.sent, result.received, result.duplicates) == (20, 60, 0)


def test_bench_rate_paces_each_producer(broker: Broker) -> None:
    settings = BenchSettings(broker.tcp_url, producers=2, messages=11, rate=200.0)

    result = run_bench(settings)

    assert result.received == 22
    # The 11th message of each producer is due 10 intervals of 5 ms after the start.
    assert result.send_seconds >= 10 / 200.0


def test_bench_command_prints_the_report_and_no_bar_off_a_terminal(
    broker: Broker, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli(["bench", broker.ws_url, "--producers", "2", "--messages", "25", "--size", "10"])

    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = captured.out.splitlines()
    assert len(lines) == 4
    assert "/queue/stompws-bench-" in lines[0] and "(STOMP 1.2)" in lines[0]
    assert lines[1].startswith("sent 50 messages in ") and lines[1].endswith(" msgs/s")
    assert lines[2].startswith("received 50 of 50 messages in ")
    assert " p99 " in lines[3] and " max " in lines[3]
    assert captured.err == ""


def test_bench_command_with_no_consumers_only_sends(
    broker: Broker, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli(["bench", broker.tcp_url, "--consumers", "0", "--messages", "7"])

    assert code == 0
    out = capsys.readouterr().out
    assert "sent 7 messages" in out and "received" not in out and "latency" not in out
    destination = out.split(" each, ", 1)[1].split(" on ", 1)[0]
    assert destination.startswith("/queue/stompws-bench-")
    assert broker.queue_depth(destination) == 7  # nobody took them


def test_bench_command_refused_credentials_exit_4_without_the_passcode(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with Broker(users={"app": "right"}, websocket=False) as guarded:
        code = cli(["bench", guarded.tcp_url, "--login", "app", "--passcode", "wrong-secret"])
    err = capsys.readouterr().err
    assert code == 4
    assert err.startswith("stompws bench: broker sent ERROR")
    assert "wrong-secret" not in err and len(err.splitlines()) == 1


def test_bench_command_unreachable_broker_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli(["bench", f"stomp://127.0.0.1:{free_port()}", "--connect-timeout", "2"])
    assert code == 3
    assert "cannot connect" in capsys.readouterr().err


@pytest.mark.parametrize(
    "option",
    [["--producers", "0"], ["--consumers", "-1"], ["--size", "-1"], ["--heartbeats", "1000"]],
)
def test_bench_command_bad_usage_exits_2(
    option: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(["bench", "stomp://127.0.0.1:1", *option]) == 2
    assert option[0] in capsys.readouterr().err


def test_bench_command_missing_messages_exit_5(capsys: pytest.CaptureFixture[str]) -> None:
    # A broker that confirms the subscription and takes every SEND but delivers nothing.
    def swallow(peer: Peer) -> None:
        peer.accept_connect()
        peer.answer_receipts_until_disconnect()

    with fake_broker(swallow) as fake:
        code = cli(["bench", fake.url, "--messages", "5", "--timeout", "0.3"])
    assert code == 5
    err = capsys.readouterr().err
    assert "only 0 of 5 messages arrived; none for 0.3 s" in err


def test_bench_raises_receive_timeout_for_missing_messages() -> None:
    def swallow(peer: Peer) -> None:
        peer.accept_connect()
        peer.answer_receipts_until_disconnect()

    with fake_broker(swallow) as fake, pytest.raises(ReceiveTimeout):
        run_bench(BenchSettings(fake.url, messages=3, timeout=0.2))


def test_bench_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli(["bench", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for option in (
        *("--producers", "--consumers", "--messages", "--size", "--destination", "--rate"),
        *("--heartbeats", "--login", "--passcode", "--host", "--connect-timeout", "--debug"),
    ):
        assert option in out
    assert "exit codes" in out


def test_bench_consumer_counts_a_duplicate_once() -> None:
    tally = _Tally()
    consumer = _Consumer(tally)
    headers = {"stompws-bench-id": "0-0", "stompws-bench-sent": "0"}
    for _ in range(2):
        consumer.message(Frame("MESSAGE", headers, b""))
    assert (tally.received, tally.duplicates, len(tally.latencies)) == (1, 1, 2)


def test_percentile_is_nearest_rank() -> None:
    values = [float(n) for n in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 0.07) == 7.0  # 0.07 * 100 is 7.000000000000001 in floats
    assert percentile(values, 1.0) == 100.0
    assert percentile([3.0], 0.99) == 3.0


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_only_on_a_terminal() -> None:
    terminal = _Terminal()
    bar = Progress(terminal)
    bar(5, 10)
    bar(10, 10)
    bar.close()
    assert terminal.getvalue().startswith("\r[" + "#" * 15 + "." * 15 + "] 5/10  50%")
    assert terminal.getvalue().endswith("] 10/10 100%\n")

    pipe = io.StringIO()
    quiet = Progress(pipe)
    quiet(5, 10)
    quiet.close()
    assert not quiet.enabled and pipe.getvalue() == ""
