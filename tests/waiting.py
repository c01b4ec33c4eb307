"""The one way the test suites wait for something another thread makes happen."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    condition: threading.Condition, ready: Callable[[], T | None], what: str, timeout: float
) -> T:
    """``ready()``'s first value that is not None, waiting on ``condition`` at most ``timeout``
    seconds; an AssertionError naming ``what`` after that."""
    deadline = time.monotonic() + timeout
    with condition:
        while (found := ready()) is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {what} within {timeout:g} s")
            condition.wait(remaining)
        return found
