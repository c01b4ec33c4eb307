from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail any test that leaves a client thread (``stompws-*``) running.

    The embedded broker's threads (``stompws-testbroker-*``) are not counted: a broker shared
    by several tests ends its per-connection threads just after the clients leave, and joins
    them all in ``stop()``, which its own tests check (tests/testing/test_lifecycle.py).
    """
    before = {t.ident for t in threading.enumerate()}
    yield
    leaked = [
        t.name
        for t in threading.enumerate()
        if t.name.startswith("stompws-")
        and not t.name.startswith("stompws-testbroker-")
        and t.ident not in before
        and t.is_alive()
    ]
    assert not leaked, f"threads outlived the test: {leaked}"
