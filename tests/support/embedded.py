"""The embedded broker (stompws.testing) shared by the tests of one package.

A test that needs a broker of its own takes the shipped plugin's ``stomp_broker`` or
``stomp_broker_factory`` (stompws/testing/pytest_plugin.py, loaded by tests/conftest.py).
A suite whose many tests can share one takes ``package_broker(...)`` instead: starting one
per test would dominate the suite's time.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from stompws.testing import Broker


def package_broker(name: str, **options: Any) -> Any:
    """A package-scoped fixture called ``name`` running ``Broker(**options)`` on ports the
    system picks. Package scope, not session: it is stopped after its package's tests, so
    that the embedded broker's own tests (tests/testing), which count its threads, see none
    of this one's."""

    @pytest.fixture(scope="package", name=name)
    def running_broker() -> Iterator[Broker]:
        with Broker(**options) as running:
            yield running

    return running_broker
