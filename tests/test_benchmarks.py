"""Smoke runs of the benchmarks against the embedded broker: they must keep working, and a
run that lost a message fails (each worker waits for every message it sent). The figures
themselves are not checked: timing belongs in benchmarks/RESULTS.md, not in tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def run(script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.timeout(150)
def test_end_to_end_quick_run_covers_every_client_and_workload() -> None:
    out = run("bench_e2e.py", "--broker", "embedded", "--quick")
    for workload in ("1conn, 100B", "1conn, 10KiB", "1conn, 1MiB", "4+4, 100B", "4+4, 1MiB"):
        assert workload in out
    assert "x rate" in out and "x CPU of stomp.py" in out and "of raw-ws" in out
    latency = out.split("latency", 1)[1]
    for client in ("stompws", "stomp.py", "raw-ws"):
        assert client in latency
    assert "p99" in latency


@pytest.mark.timeout(150)
def test_idle_quick_run_keeps_every_connection() -> None:
    out = run("bench_idle.py", "--broker", "embedded", "--quick", "--heartbeats", "500")
    assert "lost meanwhile: 0" in out
    assert "threads" in out and "KiB per connection" in out


@pytest.mark.timeout(150)
def test_levers_quick_run() -> None:
    out = run("bench_levers.py", "--quick")
    assert out.count("before") == 4
