"""The soak's verdict on resource use: does RSS, the fd count or the thread count trend upward?

A least-squares line through the samples taken after the warm-up; its slope, per minute, is
compared with a bound per resource (``BOUNDS``). A slope is a better judge than the first
sample against the last: one sample taken while a reconnect is half done (an old reader
thread still ending, a new socket already open) moves the last-minus-first difference by
that much, but moves a slope fitted through thirty samples by a thirtieth.

Why these bounds, for a 10-minute run sampled every 10 s with a cut every minute:

* threads and fds: 0.5 per minute. A leak that matters here leaks at least one thread or
  socket per reconnect, and every connection reconnects once a minute, so it shows as 1 per
  minute or more (4 or more with the soak's four connections). The noise is a sample that
  catches a reconnect midway (the cuts fall between samples to make that rare); with 31
  samples over five minutes a spread of one moves the fitted slope by about 0.1 per minute
  (one standard error), so 0.5 is far from both.
* RSS: 512 KiB per minute, 2.5 MiB over the five judged minutes. A per-message leak of even
  50 bytes at the soak's 200 messages/s is 586 KiB/min, and a leak per reconnect that
  matters (a connection's buffers and objects, 50 KiB and up, four connections a minute) is
  near or above it. Measured noise: the RSS of a run that leaks nothing moves by about
  0.5 MiB between samples.

Why the first half of the run is left out (the default warm-up): the process's memory is
still finding its level there, and it does so for minutes, not seconds. Imports done on
first use, Python's object arenas and the C allocator's heaps all grow to their working
size, and the C allocator keeps what was freed for reuse instead of giving it back, the
more so because every cut replaces each connection's threads (a new reader and heart-beat
thread, allocating into whichever heap the C library gives them). Measured on this machine
(RabbitMQ, 10 minutes, a cut a minute): the Python heap (tracemalloc), the objects the
collector tracks and Python's allocated blocks were flat from the first minute on, while
RSS rose by about 1.5 MiB a minute for five minutes and then levelled off; at the end of a
run ``malloc_trim`` hands back 3-8 MiB, i.e. memory freed and kept, not memory held. A
leak does not level off: it rises in the second half as in the first, so judging the
second half loses no leak, only the warm-up curve. The output also shows the same fit from
the first cut on, not judged, so that nobody has to take the warm-up on trust.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# Per minute; see the module docstring for why.
BOUNDS: dict[str, float] = {
    "rss_kib": 512.0,
    "fds": 0.5,
    "threads": 0.5,
}
UNITS = {"rss_kib": "KiB", "fds": "fds", "threads": "threads"}
MIN_POINTS = 3  # fewer judged samples than this: no line can be told from noise


@dataclass(frozen=True)
class Trend:
    """The fitted line of one resource over the judged samples."""

    name: str
    slope_per_minute: float
    bound: float
    first: float  # the fitted value at the first judged sample
    last: float  # ... and at the last one
    points: int

    @property
    def rising(self) -> bool:
        return self.slope_per_minute > self.bound

    def describe(self) -> str:
        unit = UNITS.get(self.name, "")
        verdict = "RISING" if self.rising else "flat"
        return (
            f"{self.name}: slope {self.slope_per_minute:+.3f} {unit}/min "
            f"(bound {self.bound:g}) over {self.points} samples: {verdict}"
        )


def slope(times: Sequence[float], values: Sequence[float]) -> tuple[float, float]:
    """The least-squares line through the points: (slope, intercept)."""
    if len(times) != len(values) or len(times) < 2:
        raise ValueError("a line needs two points or more, as many times as values")
    n = len(times)
    mean_t = sum(times) / n
    mean_v = sum(values) / n
    spread = sum((t - mean_t) ** 2 for t in times)
    if spread == 0:
        raise ValueError("the samples were all taken at the same time")
    rise = sum((t - mean_t) * (v - mean_v) for t, v in zip(times, values, strict=True))
    gradient = rise / spread
    return gradient, mean_v - gradient * mean_t


def trends(
    seconds: Sequence[float],
    columns: dict[str, Sequence[float]],
    warmup: float,
    bounds: dict[str, float] | None = None,
) -> list[Trend]:
    """One ``Trend`` per bounded column, fitted over the samples at or after ``warmup``
    seconds; raises ``ValueError`` when fewer than ``MIN_POINTS`` samples are left."""
    bounds = BOUNDS if bounds is None else bounds
    judged = [i for i, t in enumerate(seconds) if t >= warmup]
    if len(judged) < MIN_POINTS:
        raise ValueError(
            f"only {len(judged)} samples after the {warmup:g} s warm-up; "
            f"a trend needs {MIN_POINTS} or more (run longer or sample more often)"
        )
    minutes = [seconds[i] / 60.0 for i in judged]
    found = []
    for name, bound in bounds.items():
        values = [float(columns[name][i]) for i in judged]
        gradient, intercept = slope(minutes, values)
        found.append(
            Trend(
                name,
                gradient,
                bound,
                intercept + gradient * minutes[0],
                intercept + gradient * minutes[-1],
                len(judged),
            )
        )
    return found
