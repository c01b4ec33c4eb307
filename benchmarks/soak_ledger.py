"""The soak worker's bookkeeping: which messages were confirmed and received, how long every
call took against its bound, and the traffic of the current sampling window.

Everything here is thread-safe and, on purpose, bounded: the soak judges the memory of the
process it runs in, so a ledger that kept every message would be the very leak it looks for.
Sequence numbers are kept as a floor (every number below it is in) plus the few above it,
and a window's latencies are dropped when the window is read.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from dataclasses import dataclass, field

GRACE = 2.0  # seconds a call may run past its bound before it counts as an overrun
EXAMPLES_KEPT = 5  # overruns and timeouts described in the summary, per kind


class SeqSet:
    """A set of non-negative sequence numbers that stays small when they come roughly in
    order: ``floor`` is the first number missing, ``above`` those present past it."""

    def __init__(self) -> None:
        self.floor = 0
        self.above: set[int] = set()
        self.count = 0
        self._lock = threading.Lock()

    def add(self, seq: int) -> bool:
        """True when ``seq`` is new."""
        with self._lock:
            if seq < self.floor or seq in self.above:
                return False
            self.count += 1
            if seq == self.floor:
                self.floor += 1
                while self.floor in self.above:
                    self.above.discard(self.floor)
                    self.floor += 1
            else:
                self.above.add(seq)
            return True

    def __contains__(self, seq: object) -> bool:
        with self._lock:
            return isinstance(seq, int) and (0 <= seq < self.floor or seq in self.above)


@dataclass
class CallStats:
    count: int = 0
    longest: float = 0.0
    errors: Counter[str] = field(default_factory=Counter)


class CallLog:
    """Every timed call of the worker: how long it took against the bound it promises
    (an overrun is past bound + ``GRACE``), and what it raised."""

    def __init__(self) -> None:
        self.calls: dict[str, CallStats] = {}
        self.overruns: list[str] = []
        self.timeouts: list[str] = []
        self.timeout_count = 0
        self.overrun_count = 0
        self._lock = threading.Lock()

    def record(
        self, kind: str, seconds: float, bound: float, error: BaseException | None = None
    ) -> None:
        with self._lock:
            stats = self.calls.setdefault(kind, CallStats())
            stats.count += 1
            stats.longest = max(stats.longest, seconds)
            if error is not None:
                stats.errors[type(error).__name__] += 1
            if seconds > bound + GRACE:
                self.overrun_count += 1
                if len(self.overruns) < EXAMPLES_KEPT:
                    self.overruns.append(f"{kind} took {seconds:.2f} s (bound {bound:g} s)")

    def timed_out(self, kind: str, error: BaseException) -> None:
        """A call gave up at its own deadline (the client raised its TimeoutError)."""
        with self._lock:
            self.timeout_count += 1
            if len(self.timeouts) < EXAMPLES_KEPT:
                self.timeouts.append(f"{kind}: {type(error).__name__}: {error}")

    def summary(self) -> dict[str, object]:
        with self._lock:
            return {
                "calls": {
                    kind: {
                        "count": stats.count,
                        "longest_s": round(stats.longest, 3),
                        "errors": dict(stats.errors),
                    }
                    for kind, stats in sorted(self.calls.items())
                },
                "overruns": self.overrun_count,
                "overrun_examples": list(self.overruns),
                "timeouts": self.timeout_count,
                "timeout_examples": list(self.timeouts),
            }


class Window:
    """The deliveries of one sampling window: how many, and their send-to-receive times."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._delivered = 0
        self._latencies: list[float] = []

    def delivered(self, latency: float | None) -> None:
        with self._lock:
            self._delivered += 1
            if latency is not None:
                self._latencies.append(latency)

    def take(self) -> tuple[int, list[float]]:
        """The window's deliveries and latencies (seconds, sorted); starts the next one."""
        with self._lock:
            delivered, latencies = self._delivered, self._latencies
            self._delivered, self._latencies = 0, []
        latencies.sort()
        return delivered, latencies


def percentile(ordered: list[float], fraction: float) -> float | None:
    """The nearest-rank percentile of sorted values; None when there are none."""
    if not ordered:
        return None
    rank = math.ceil(fraction * len(ordered))
    return ordered[min(max(rank - 1, 0), len(ordered) - 1)]
