"""The soak (benchmarks/soak.py) must keep working: a short run against the embedded broker
that writes its CSV, plot, summary and verdict, with no message lost and no call past its
timeout. Too short for a trend to mean anything, so the verdict may say a resource rose,
and nothing else; ``make soak`` is the real run. Plus the trend arithmetic on known lines."""

from __future__ import annotations

import csv
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from .support.ci import need

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from soak_ledger import SeqSet, percentile  # noqa: E402
from soak_trend import slope, trends  # noqa: E402

SECONDS, SAMPLE_EVERY, CUT_EVERY, WARMUP = 18, 2, 5, 6


@pytest.mark.timeout(90)
def test_a_short_soak_writes_its_samples_plot_and_verdict(tmp_path: Path) -> None:
    if importlib.util.find_spec("matplotlib") is None:
        need("matplotlib is not installed (setup.cfg's test extra)")
    samples = tmp_path / "soak.csv"
    picture = tmp_path / "soak.png"
    done = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "soak.py"),
            "--broker=embedded",
            f"--seconds={SECONDS}",
            f"--sample-every={SAMPLE_EVERY}",
            f"--cut-every={CUT_EVERY}",
            f"--warmup={WARMUP}",
            f"--csv={samples}",
            f"--png={picture}",
        ],
        capture_output=True,
        text=True,
        timeout=80,
        check=False,
    )
    out = done.stdout
    report = f"stdout:\n{out[-4000:]}\nstderr:\n{done.stderr[-3000:]}"
    assert done.returncode == (0 if "soak: PASSED" in out else 1), report
    verdict = out.rsplit("soak: ", 1)[-1]
    assert verdict.startswith(("PASSED", "FAILED")), report
    reasons = [line for line in verdict.splitlines()[1:] if line.startswith("  - ")]
    # A short run judges no trend fairly (and says so); anything else is a real failure.
    assert all(
        "trends upward" in reason or reason.startswith("  - (a run under") for reason in reasons
    ), report

    with samples.open() as table:
        rows = list(csv.DictReader(table))
    assert len(rows) == SECONDS // SAMPLE_EVERY + 1, report  # and the one at 0 s
    assert {"t", "rss_kib", "fds", "threads", "msgs_per_s", "p99_ms"} <= set(rows[0]), rows[0]
    assert float(rows[-1]["msgs_per_s"]) > 0, report
    assert picture.read_bytes().startswith(b"\x89PNG"), report

    summary = json.loads(samples.with_suffix(".json").read_text())
    cuts = len(summary["cuts"])
    assert cuts == (SECONDS - 1) // CUT_EVERY, summary["cuts"]
    for name, lane in summary["lanes"].items():
        assert sum(lane["lost"].values()) == 0, (name, lane)
        assert sum(lane["unconfirmed"].values()) == 0, (name, lane)
        # Every cut ends both connections of a lane, and each comes back by itself.
        assert lane["reconnects"] == {"producer": cuts, "consumer": cuts}, (name, lane)
    assert (summary["overruns"], summary["timeouts"], summary["failures"]) == (0, 0, []), summary


def test_slope_of_a_known_line() -> None:
    gradient, intercept = slope([0, 1, 2, 3], [5, 7, 9, 11])
    assert (gradient, intercept) == (2, 5)
    with pytest.raises(ValueError, match="same time"):
        slope([1, 1], [0, 1])


def test_trends_leave_out_the_warm_up_and_judge_per_minute() -> None:
    seconds = [0, 60, 120, 180, 240]
    columns = {
        "rss_kib": [10_000, 50_000, 50_100, 50_200, 50_300],  # a warm-up jump, then 100/min
        "fds": [3, 20, 20, 20, 20],
        "threads": [1, 9, 10, 11, 12],  # one more per minute: a leak
    }
    found = {trend.name: trend for trend in trends(seconds, columns, warmup=60)}
    assert found["rss_kib"].slope_per_minute == pytest.approx(100)
    assert not found["rss_kib"].rising
    assert found["fds"].slope_per_minute == 0 and not found["fds"].rising
    assert found["threads"].rising and found["threads"].points == 4
    with pytest.raises(ValueError, match="warm-up"):
        trends(seconds, columns, warmup=200)


def test_seqset_stays_small_and_counts_each_number_once() -> None:
    seen = SeqSet()
    assert [seen.add(n) for n in (0, 2, 1, 2, 3)] == [True, True, True, False, True]
    assert (seen.floor, seen.above, seen.count) == (4, set(), 4)
    assert 2 in seen and 4 not in seen
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0
    assert percentile(list(map(float, range(1, 101))), 0.99) == 99.0
    assert percentile([], 0.99) is None
