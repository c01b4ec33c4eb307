from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail any test that leaves a stompws thread running."""
    before = {t.ident for t in threading.enumerate()}
    yield
    leaked = [
        t.name
        for t in threading.enumerate()
        if t.name.startswith("stompws-") and t.ident not in before and t.is_alive()
    ]
    assert not leaked, f"threads outlived the test: {leaked}"
