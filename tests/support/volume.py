"""How much of each volume test runs: all of it on `make test`'s own interpreter, a part on
the other Pythons of the test matrix (noxfile.py sets STOMPWS_TEST_VOLUME=0.25).

A volume test (thousands of cycles, sends, generated or fuzzed inputs) finds its defects in
the library's logic, the same on every interpreter; on the others the matrix checks that the
code runs right there, and a quarter of the inputs does that at a quarter of the CPU, which
the 2-core machine's 10 minutes for `make test` need (README: the test matrix).
"""

from __future__ import annotations

import os

FACTOR = float(os.environ.get("STOMPWS_TEST_VOLUME", "1"))


def scaled(count: int) -> int:
    """``count`` at this run's volume (at least 1)."""
    return max(1, round(count * FACTOR))
