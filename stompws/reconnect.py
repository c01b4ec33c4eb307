"""The reconnect policy: exponential backoff with jitter, and a limit on attempts."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .errors import UsageError

__all__ = ["MIN_RETRY_DELAY", "Reconnect"]

MIN_RETRY_DELAY = 0.05  # seconds: the shortest wait before any try but the first


@dataclass(frozen=True)
class Reconnect:
    """How a ``Client`` reconnects after losing an established connection.

    The n-th wait (from 0) is ``min(initial * multiplier**n, maximum)``, spread by
    ``±jitter`` of itself so that many clients do not come back in step. ``attempts=None``
    tries for ever; each attempt tries every URL of the client once, in order. The waits
    start again from ``initial`` only after a CONNECTED.
    """

    initial: float = 0.1
    maximum: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.1
    attempts: int | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.initial <= self.maximum:
            raise UsageError(f"need 0 <= initial <= maximum, not {self.initial}, {self.maximum}")
        if self.multiplier < 1:
            raise UsageError(f"multiplier must be at least 1, not {self.multiplier}")
        if not 0 <= self.jitter <= 1:
            raise UsageError(f"jitter must be between 0 and 1, not {self.jitter}")
        if self.attempts is not None and self.attempts < 1:
            raise UsageError(f"attempts must be at least 1 (or None), not {self.attempts}")

    def delays(self, rand: Callable[[], float] = random.random) -> Iterator[float]:
        """The wait before each attempt, in seconds.

        Only the first may be shorter than ``MIN_RETRY_DELAY``: ``initial=0`` retries at
        once after a loss, but a broker that accepts and drops every connection must not
        get a hot loop of attempts (0 x multiplier stays 0 for ever).
        """
        attempt = 0
        delay = self.initial
        while self.attempts is None or attempt < self.attempts:
            spread = 1.0 + self.jitter * (2.0 * rand() - 1.0)
            yield delay * spread
            attempt += 1
            delay = max(min(delay * self.multiplier, self.maximum), MIN_RETRY_DELAY)
