"""``--busy-threads=N``: N threads that burn CPU in this process for the whole session.

They stand in for a loaded 2-core CI machine where it hurts a threaded client most: they
compete for the GIL with the client's reader and timer threads and with the test, so a
wait that was "long enough" on an idle laptop is not. ``make stress`` runs the
timing-sensitive tests this way, many times over (pytest-repeat's ``--count``).

The threads are daemons named ``busy-N`` (not ``stompws-*``, so the leaked-thread check
ignores them), and stop at the end of the session.
"""

from __future__ import annotations

import threading

import pytest

_STOP = threading.Event()
_THREADS: list[threading.Thread] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--busy-threads",
        type=int,
        default=0,
        metavar="N",
        help="run N CPU-burning threads in the test process for the whole session",
    )


def _burn() -> None:
    # Pure bytecode, no sleeping and no I/O: holds the GIL for whole switch intervals.
    total = 0
    while not _STOP.is_set():
        for number in range(10_000):
            total += number * number


def pytest_configure(config: pytest.Config) -> None:
    count = config.getoption("--busy-threads")
    _STOP.clear()
    for index in range(count):
        thread = threading.Thread(target=_burn, name=f"busy-{index}", daemon=True)
        thread.start()
        _THREADS.append(thread)


def pytest_report_header(config: pytest.Config) -> str | None:
    count = config.getoption("--busy-threads")
    return f"busy threads: {count}" if count else None


def pytest_unconfigure(config: pytest.Config) -> None:
    _STOP.set()
    for thread in _THREADS:
        thread.join(5.0)
    _THREADS.clear()
