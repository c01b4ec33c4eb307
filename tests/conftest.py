from __future__ import annotations

import threading
from collections.abc import Generator, Iterator

import pytest
from hypothesis import settings

from .support.brokers import broker_log_news, broker_log_sizes
from .support.busy import (  # noqa: F401  (hooks: pytest finds them by name)
    pytest_addoption,
    pytest_configure,
    pytest_report_header,
    pytest_unconfigure,
)
from .support.ci import in_ci, is_structural

# The fixtures the package ships for its users' tests, used by its own: stomp_broker and
# stomp_broker_factory (tests/support/embedded.py says when a suite shares one instead).
pytest_plugins = ["stompws.testing.pytest_plugin"]

# No per-example deadline (hypothesis's default is 200 ms): it times the machine, not the
# code. On a 2-core machine running the test matrix beside this run, one parser round trip
# took 395 ms and failed; a slow path the code really has shows in benchmarks/, and a hang
# is pytest-timeout's to stop.
settings.register_profile("stompws", deadline=None)
settings.load_profile("stompws")


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


_LOGS_AT_START = pytest.StashKey[dict[str, int]]()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Note where the real brokers' logs end, so that a failure reports what they logged
    while the test ran (tests/support/brokers.py)."""
    if item.get_closest_marker("integration"):
        item.stash[_LOGS_AT_START] = broker_log_sizes()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """In CI a skip that is not structural fails the test (see tests/support/ci.py).

    This catches every way of skipping (``pytest.skip`` anywhere, a ``skip``/``skipif`` mark)
    except xfail, which is reported as skipped too but is tracked by its own strictness."""
    report = yield
    if report.failed and _LOGS_AT_START in item.stash:
        news = broker_log_news(item.stash[_LOGS_AT_START])
        if news:
            report.sections.append(("what the brokers logged meanwhile", news))
    if not (in_ci() and report.skipped) or hasattr(report, "wasxfail"):
        return report
    reason = _skip_reason(report)
    if not is_structural(reason):
        report.outcome = "failed"
        report.longrepr = f"CI forbids this skip (tests/support/ci.py): {reason}"
    return report


def _skip_reason(report: pytest.TestReport) -> str:
    if isinstance(report.longrepr, tuple):  # (path, line, "Skipped: reason")
        return str(report.longrepr[2])
    return str(report.longrepr)


# The parameters that pick the broker of a test marked ``brokers``; a value or its
# ``.broker`` has a ``.name`` such as "rabbitmq-ws" or "embedded-tcp".
_BROKER_PARAMS = ("target", "broker")


def _embedded_only(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return False
    for param in _BROKER_PARAMS:
        if param in callspec.params:
            value = callspec.params[param]
            name = getattr(getattr(value, "broker", value), "name", value)
            return str(name).startswith("embedded")
    return False


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``brokers`` becomes ``integration`` except on the embedded broker, so that
    ``-m "not integration"`` keeps every test that needs nothing outside this process.
    Runs first, before ``-m`` deselects."""
    for item in items:
        if item.get_closest_marker("brokers") and not _embedded_only(item):
            item.add_marker(pytest.mark.integration)
