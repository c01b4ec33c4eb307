"""What a run in CI may skip: nothing but the structural.

``.ci/run`` exports ``CI=true``. There a missing prerequisite (a broker that did not start, the
Node peers, the openssl command) is a failure, because a green run that skipped a whole suite
proves nothing. Outside CI a developer without the brokers still gets a useful run, so the
same test skips and says what to start.

``need(problem)`` is how a test says "I cannot run here"; ``structural(reason)`` is for the
rare combination that cannot exist at all (prefer not generating it). The root conftest turns
any other skip into a failure in CI, so a bare ``pytest.skip`` added later cannot hide there.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

# The prefix the root conftest allows in CI. Kept short: it shows in `-ra` summaries.
STRUCTURAL = "structural: "


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def need(problem: str) -> NoReturn:
    """A missing prerequisite: skip the test, or fail it in CI."""
    if in_ci():
        pytest.fail(f"CI requires it: {problem}", pytrace=False)
    pytest.skip(problem)


def structural(reason: str) -> NoReturn:
    """A skip CI accepts: the combination cannot exist, whatever the machine has."""
    pytest.skip(STRUCTURAL + reason)


def is_structural(reason: str) -> bool:
    # pytest prefixes the reason of a skip raised inside a test with "Skipped: ".
    return reason.removeprefix("Skipped: ").startswith(STRUCTURAL)
