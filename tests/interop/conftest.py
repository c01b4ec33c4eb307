"""Fixtures for the interoperability tests, and the recorder behind docs/compatibility.md.

Prerequisites are probed once per session: each broker port (a TCP connect, 2 s), and node
with the npm packages that scripts/interop/setup.sh installs. A missing one skips the tests
that need it, or fails them when the ``CI`` environment variable is set, naming the script
that provides it.

Every test marked ``@pytest.mark.compat_table(section, feature=...)`` becomes one cell of the
compatibility table: the column and STOMP version come from its ``route`` or ``target``
parameter (anything with ``column`` and ``version`` attributes), the feature from its ``case``
parameter or from the marker. Its outcome, and any quirk the test noted with ``quirk()``, go
to .interop/compat-results.json at the end of the session; scripts/interop/compat_table.py
turns that into docs/compatibility.md.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ..support import brokers as real
from ..support.ci import need
from .support import ENDPOINTS, ROOT, SCRIPTS, SETUP, Endpoint, node_env, node_problem

RESULTS = Path(os.environ.get("STOMPWS_INTEROP_DIR", ROOT / ".interop")) / "compat-results.json"
_RESULTS_KEY = pytest.StashKey[list[dict[str, Any]]]()

Require = Callable[..., None]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "compat_table(section, feature=None): a cell of docs/compatibility.md (tests/interop)",
    )
    config.stash[_RESULTS_KEY] = []


def _unavailable(problem: str) -> None:
    need(problem)


def _probe(endpoint: Endpoint) -> str | None:
    return real.probe(endpoint.name, endpoint.host, endpoint.port)


@pytest.fixture(scope="session")
def prerequisites() -> dict[str, str | None]:
    """What each prerequisite lacks (None: present), probed once per session."""
    problems: dict[str, str | None] = {name: _probe(e) for name, e in ENDPOINTS.items()}
    problems["node"] = node_problem()
    return problems


@pytest.fixture
def require(prerequisites: dict[str, str | None]) -> Require:
    """``require("rabbitmq-ws", "node")`` skips the test (fails it in CI) unless all are there."""

    def check(*names: str) -> None:
        for name in names:
            problem = prerequisites[name]
            if problem is not None:
                _unavailable(problem)

    return check


@dataclass(frozen=True)
class NodeBroker:
    """stomp-broker-js, running in a node process started by the ``stomp_broker_js`` fixture."""

    url: str
    process: subprocess.Popen[bytes]


@pytest.fixture(scope="module")
def stomp_broker_js(prerequisites: dict[str, str | None]) -> Iterator[NodeBroker]:
    problem = prerequisites["node"]
    if problem is not None:
        _unavailable(problem)
    process = subprocess.Popen(
        ["node", str(SCRIPTS / "stomp_broker.cjs")],
        stdin=subprocess.PIPE,  # the broker exits when this closes
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=node_env(),
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # printed once it listens; empty if node died
        if not line:
            _, stderr = process.communicate(timeout=5)
            raise AssertionError(
                f"stomp_broker.cjs did not start (run {SETUP}): {stderr.decode()[-2000:]}"
            )
        started = json.loads(line)
        yield NodeBroker(f"ws://127.0.0.1:{started['port']}{started['path']}", process)
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


# -- the compatibility recorder -------------------------------------------------------------


@pytest.fixture
def quirk(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """``quirk("what differs")``: the test passed, but a peer does something its own way;
    the table marks the cell ⚠ with this text as a footnote."""

    def note(text: str) -> None:
        request.node.user_properties.append(("compat_quirk", text))

    return note


def _cell(item: pytest.Item) -> dict[str, Any] | None:
    marker = item.get_closest_marker("compat_table")
    callspec = getattr(item, "callspec", None)
    if marker is None or callspec is None:
        return None
    params = callspec.params
    where = params.get("route", params.get("target"))
    if where is None:
        return None
    case = params.get("case")
    feature = marker.kwargs.get("feature") or (case.feature if case is not None else item.name)
    return {
        "section": getattr(where, "section", None) or marker.args[0],
        "column": where.column,
        "version": where.version,
        "feature": feature,
        "test": item.nodeid,
    }


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    # One record per test: its call, or its setup when that skipped or failed (no call then).
    if report.when == "call" or (report.when == "setup" and not report.passed):
        cell = _cell(item)
        if cell is not None:
            quirks = [text for name, text in item.user_properties if name == "compat_quirk"]
            outcome: str = report.outcome
            if outcome == "passed" and quirks:
                outcome = "quirk"
            message = ""
            if report.failed:
                message = str(report.longrepr).strip().splitlines()[-1][:300]
            elif report.skipped and isinstance(report.longrepr, tuple):
                message = str(report.longrepr[2])
            item.config.stash[_RESULTS_KEY].append(
                {**cell, "outcome": outcome, "quirks": quirks, "message": message}
            )
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    results = session.config.stash.get(_RESULTS_KEY, [])
    if not results or hasattr(session.config, "workerinput"):
        return
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n")
