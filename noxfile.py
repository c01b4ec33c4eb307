"""The test matrix: what needs no real broker, on every CPython that setup.cfg promises.

``make test`` runs the sessions of 3.10, 3.12 and 3.13 beside its tests against the real
brokers (the Makefile says why there); ``make matrix`` runs all four. The full suite (the
real brokers and the Node peers included) runs on one interpreter, in ``make test``; here
each supported version runs everything that needs nothing outside the process: the unit
tests, the embedded broker over TCP and WebSocket (also behind the fault proxy), the scripted
peers, the model-based test and the fuzz smoke test, in the same two pytest runs as ``make
hermetic``, with a quarter of each volume test's inputs (tests/support/volume.py).

Interpreters are found, never downloaded: pyenv's versions come first on PATH (its shims
answer ``python3.10`` only for the versions selected by ``pyenv global``), then PATH as it is.
A missing interpreter fails the run: a version we claim and do not test is a claim we do
not keep.
"""

from __future__ import annotations

import os
from pathlib import Path

import nox

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]

nox.options.sessions = ["hermetic"]
nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = True


def _pyenv_bins() -> list[str]:
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    found = []
    for version in PYTHONS:
        # The newest patch release of each (3.10.13 over 3.10.9: compared as numbers).
        candidates = [
            path
            for path in root.glob(f"{version}.*")
            if path.name.removeprefix(f"{version}.").isdigit()
            and (path / "bin" / f"python{version}").exists()
        ]
        if candidates:
            newest = max(candidates, key=lambda path: int(path.name.rsplit(".", 1)[1]))
            found.append(str(newest / "bin"))
    return found


os.environ["PATH"] = os.pathsep.join([*_pyenv_bins(), os.environ.get("PATH", "")])


@nox.session(python=PYTHONS)
def hermetic(session: nox.Session) -> None:
    """The broker-less suites; extra arguments (``-n 2`` for xdist) go to both pytest runs."""
    # The versions CI tested, with markers for what differs on 3.10 (constraints.txt).
    session.install("--quiet", "-c", "constraints.txt", "-e", ".[test,broker]")
    # A quarter of each volume test (tests/support/volume.py) unless the caller says.
    session.env.setdefault("STOMPWS_TEST_VOLUME", os.environ.get("STOMPWS_TEST_VOLUME", "0.25"))
    # tests/test_soak.py checks a tool that `make soak` runs on make test's interpreter only
    # (its plot needs the soak extra, matplotlib: not installed here).
    common = ["-p", "no:cacheprovider", "--ignore=tests/test_soak.py", *session.posargs]
    session.run("pytest", *common, "-m", "not integration and not isolated", "tests")
    # No isolated test is broker-less today: pytest's "no tests collected" (5) is no failure.
    session.run(
        "pytest", *common, "-m", "isolated and not integration", "tests", success_codes=[0, 5]
    )
