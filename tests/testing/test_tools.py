"""The pieces users run: the quickstart example, the command line, the pytest plugin."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import stompws

ROOT = Path(__file__).resolve().parents[2]


def run(
    args: list[str], *, cwd: Path = ROOT, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def test_the_quickstart_runs_and_says_what_happens() -> None:
    done = run([str(ROOT / "examples" / "quickstart.py")])
    assert done.returncode == 0, done.stderr
    for step in (
        "connected: STOMP 1.2",
        "received",
        "RECEIPT",
        "after COMMIT",
        "disconnected cleanly",
    ):
        assert step in done.stdout


def test_the_broker_command_serves_until_interrupted() -> None:
    # Ctrl-C as a terminal sends it. A process started with SIGINT ignored (what a shell
    # does to a job it starts in the background, and so to this suite run from such a job)
    # hands that on, and Python then installs no KeyboardInterrupt: the broker rightly
    # ignored the signal and this test failed in every fresh-clone run started with `&`.
    # The broker is therefore started with Python's own handler, as from a terminal.
    # -X faulthandler: should it not stop in time, SIGABRT below prints where each of its
    # threads is (on stderr, which pytest captures), instead of a bare timeout.
    start = (
        "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "sys.argv[0] = 'stompws.testing'; runpy.run_module('stompws.testing', run_name='__main__')"
    )
    command = [sys.executable, "-X", "faulthandler", "-c", start, "--port", "0", "--tcp-port", "0"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line.strip())
            if line.startswith("press Ctrl-C"):
                break
        urls = [line.split()[-1] for line in lines if line.startswith("listening on")]
        assert [url.split(":")[0] for url in urls] == ["ws", "stomp"]
        for url in urls:
            with stompws.Client(url, heartbeats=(0, 0), connect_timeout=5) as client:
                sub = client.subscribe("/queue/cli")
                client.send("/queue/cli", "via the command line")
                assert sub.get(5).text == "via the command line"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
        assert process.stdout.read().strip() == "stopped"
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGABRT)  # the thread stacks, then the end
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def test_the_broker_command_reports_a_port_in_use() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = str(taken.getsockname()[1])
        done = run(["-m", "stompws.testing", "--no-websocket", "--tcp-port", port], timeout=15)
    assert done.returncode == 1
    assert "cannot listen" in done.stderr and "--tcp-port" in done.stderr


def test_the_broker_command_has_help() -> None:
    done = run(["-m", "stompws.testing", "--help"], timeout=15)
    assert done.returncode == 0
    for option in ("--port", "--tcp-port", "--user", "--no-websocket", "--heartbeats"):
        assert option in done.stdout


def test_the_pytest_plugin_gives_a_broker_per_test(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["stompws.testing.pytest_plugin"]\n')
    (tmp_path / "test_users_code.py").write_text(
        textwrap.dedent(
            """
            import stompws

            def test_default(stomp_broker):
                with stompws.Client(stomp_broker.ws_url, heartbeats=(0, 0)) as client:
                    sub = client.subscribe("/queue/a")
                    client.send("/queue/a", "hi")
                    assert sub.get(5).text == "hi"

            def test_factory(stomp_broker_factory):
                broker = stomp_broker_factory(users={"app": "pw"}, websocket=False)
                client = stompws.Client(broker.tcp_url, login="app", passcode="pw",
                                        heartbeats=(0, 0))
                client.connect(5)
                client.disconnect()
                assert broker.ws_port is None
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout
