"""For the tests that measure the whole process (threads, file descriptors, memory): a start
from a quiet process, whatever the tests before left winding down.

Such a test is marked ``process_state`` and says so in its docstring. It measures before and
after inside itself; ``settle()`` first lets the threads of earlier work end (a client's
reader, a broker's per-connection threads, a proxy's pumps) and collects garbage, so that
neither an earlier test's leftovers ending mid-test nor unreachable sockets awaiting the
collector change what it counts.
"""

from __future__ import annotations

import gc
import threading
import time

SETTLE = 10.0  # seconds for earlier work's threads to end: a failure past it, never a skip


def _resident(thread: threading.Thread) -> bool:
    """Threads that live as long as what owns them, not one connection: the main thread,
    the load of ``--busy-threads`` (tests/support/busy.py), and the accept loops of a
    broker, proxy or peer a fixture keeps for a whole package."""
    return (
        thread is threading.main_thread()
        or thread is threading.current_thread()
        or thread.name.startswith("busy-")
        or thread.name.endswith("-accept")
    )


def transient_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.is_alive() and not _resident(t)]


def thread_idents() -> set[int | None]:
    return {thread.ident for thread in threading.enumerate()}


def settle(timeout: float = SETTLE) -> None:
    """Join every transient thread (those ending may start others, e.g. a broker's shutdown
    thread, hence the loop), then collect garbage; fails naming the threads still alive
    after ``timeout``."""
    deadline = time.monotonic() + timeout
    while left := transient_threads():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            names = sorted(thread.name for thread in left)
            raise AssertionError(f"threads still running after {timeout:g} s: {names}")
        left[0].join(remaining)
    gc.collect()
