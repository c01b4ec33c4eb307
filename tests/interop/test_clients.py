"""stompws ↔ stomp.py 9 and stompws ↔ STOMP.js 7, both ways, through the real brokers.

Each route (peer, direction, broker endpoint, STOMP version) runs one exchange of every
message case (support.CASES) and each case is its own test, so the table shows which cases
cross and which do not. Where a peer or broker is known to change a case, the test asserts
exactly that change and notes it as a quirk: a new difference fails, a fixed one too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from .conftest import Require
from .support import CASES, STOMPJS, STOMPPY, Case, Outcome, Route, routes

pytestmark = [pytest.mark.integration, pytest.mark.compat_table("clients")]

ROUTES = routes()
_outcomes: dict[str, dict[str, Outcome]] = {}  # route id -> case name -> outcome


@pytest.fixture
def outcomes(route: Route, require: Require) -> dict[str, Outcome]:
    """Every case of the route, exchanged once (by the first test that asks) as a batch."""
    require(*route.needs)
    if route.id not in _outcomes:
        _outcomes[route.id] = route.run([c for c in CASES if route.version in c.versions])
    return _outcomes[route.id]


def _escaped(value: str) -> str:
    """A header value as RabbitMQ writes it in a MESSAGE (the 1.2 escapes, on any version)."""
    return value.replace("\\", "\\\\").replace("\r", "\\r").replace("\n", "\\n").replace(":", "\\c")


def _stompjs_unescaped(wire: str) -> str:
    """What STOMP.js 7 makes of an escaped value: it replaces one escape kind after another
    (\\r, \\n, \\c, then \\\\), so an escaped backslash followed by n, c or r is misread."""
    return wire.replace("\\r", "\r").replace("\\n", "\n").replace("\\c", ":").replace("\\\\", "\\")


@dataclass(frozen=True)
class Expected:
    headers: dict[str, str] = field(default_factory=dict)
    error: str | None = None  # the case cannot cross: the outcome's error says this
    quirk: str | None = None


STOMPJS_1_1 = (
    "STOMP.js 7 escapes and unescapes header values only on STOMP 1.2, not on 1.1 (which "
    "defines `\\n` `\\c` `\\\\`)"
)


def expected(route: Route, case: Case) -> Expected:
    """What arrives of ``case`` on ``route``: the case itself unless a known quirk applies."""
    headers = dict(case.headers)
    receiver = STOMPPY if route.stompws_sends and route.peer == STOMPPY else None
    if route.stompws_sends and route.peer == STOMPJS:
        receiver = STOMPJS
    if receiver == STOMPJS and case.name == "non-utf8":
        return Expected(
            error="invalid UTF-8",
            quirk="RabbitMQ Web STOMP sends every MESSAGE as a text WebSocket message; one "
            "whose body is not UTF-8 makes the `ws` package (and browsers) close the "
            "connection, so STOMP.js cannot receive such a body",
        )
    if route.peer == STOMPJS and route.version == "1.1" and case.headers:
        if receiver == STOMPJS:
            return Expected(
                {name: _escaped(value) for name, value in headers.items()},
                quirk=f"{STOMPJS_1_1}: it shows the escaped form",
            )
        if case.name == "newline":
            return Expected(
                error="header_no_value",
                quirk=f"{STOMPJS_1_1}: a raw newline splits the header and RabbitMQ closes "
                "the connection (1007)",
            )
        if case.name == "backslash":
            return Expected(
                error="bad_escape",
                quirk=f"{STOMPJS_1_1}: a raw backslash is an undefined escape to RabbitMQ, "
                "which closes the connection (1007)",
            )
        if case.name == "escape-like":
            return Expected(
                {name: _stompjs_unescaped(value) for name, value in headers.items()},
                quirk=f"{STOMPJS_1_1}: RabbitMQ reads the raw `\\n` `\\c` `\\r` as escapes "
                "(a line break, a colon and a CR arrive) and sends the CR back as `\\r`, "
                "which STOMP 1.1 does not define: stompws reads it all the same",
            )
    rabbitmq_1_0 = route.broker == "RabbitMQ" and route.version == "1.0"
    if rabbitmq_1_0 and case.name == "colon" and receiver != STOMPPY:
        return Expected(
            {"x-colon": _escaped(headers["x-colon"])},
            quirk="RabbitMQ escapes `:` as `\\c` in header values on STOMP 1.0 too, "
            "which defines no escapes (stomp.py unescapes on every version and hides it)",
        )
    if receiver == STOMPJS and route.version == "1.2" and case.name == "escape-like":
        return Expected(
            {name: _stompjs_unescaped(_escaped(value)) for name, value in headers.items()},
            quirk="STOMP.js 7 unescapes one escape kind after another, so an escaped "
            "backslash followed by n, c or r comes out as a newline, colon or CR",
        )
    return Expected(headers)


def _params() -> list[Any]:
    return [
        pytest.param(route, case, id=f"{route.id}-{case.name}")
        for route in ROUTES
        for case in CASES
        if route.version in case.versions
    ]


@pytest.mark.parametrize(("route", "case"), _params())
def test_case_crosses(
    route: Route, case: Case, outcomes: dict[str, Outcome], quirk: Callable[[str], None]
) -> None:
    outcome = outcomes[case.name]
    want = expected(route, case)
    if want.error is not None:
        assert outcome.received is None, "the case crossed: the quirk is gone, update expected()"
        assert want.error in (outcome.error or ""), outcome.error
        if want.quirk is not None:
            quirk(want.quirk)
        return
    assert outcome.error is None, outcome.error
    received = outcome.received
    assert received is not None
    assert received.body == case.body
    if case.content_type is not None:
        assert received.headers.get("content-type") == case.content_type
    for name, value in want.headers.items():
        assert received.headers.get(name) == value, name
    assert received.headers.get("destination", "").startswith("/queue/stompws-interop-")
    if want.quirk is not None:
        quirk(want.quirk)


@pytest.mark.compat_table("clients", feature="receipts (SEND, SUBSCRIBE)")
@pytest.mark.parametrize("route", ROUTES, ids=[route.id for route in ROUTES])
def test_receipts(route: Route, outcomes: dict[str, Outcome]) -> None:
    # Every SEND of the exchange asked for a RECEIPT, and so did the receiver's SUBSCRIBE.
    outcome = outcomes["text"]
    assert outcome.error is None, outcome.error
    assert outcome.sender_receipts == 1
    assert outcome.subscribe_receipt
