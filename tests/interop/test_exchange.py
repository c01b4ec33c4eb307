"""run_exchange's batching, with fake peers (no broker): a case that kills a connection is
blamed alone, and the cases around it keep their own outcomes."""

from __future__ import annotations

from collections.abc import Sequence

from .support import NOT_RUN, Case, Exchange, Received, SendFailed, run_exchange

CASES = [Case(name, name, name.encode()) for name in ("a", "b", "bad", "c", "poison", "d")]


class FakeBroker:
    """Queues of (case name, body); the sender refuses "bad", the receiver dies on "poison"."""

    def __init__(self) -> None:
        self.queues: dict[str, list[Case]] = {}
        self.batches: list[list[str]] = []

    def send(self, queue: str, cases: Sequence[Case]) -> int:
        self.batches.append([case.name for case in cases])
        sent = self.queues.setdefault(queue, [])
        for case in cases:
            if case.name == "bad":
                raise SendFailed(len(sent), "refused")
            sent.append(case)
        return len(sent)

    def receive(self, queue: str, count: int) -> Exchange:
        exchange = Exchange(subscribe_receipt=True)
        for case in self.queues[queue][:count]:
            if case.name == "poison":
                exchange.error = "connection closed"
                break
            exchange.messages[case.name] = Received({"x-case": case.name}, case.body)
        return exchange


def test_each_failure_is_blamed_alone_and_the_rest_cross() -> None:
    broker = FakeBroker()

    outcomes = run_exchange(broker.send, broker.receive, CASES)

    assert {name for name, o in outcomes.items() if o.error is None} == {"a", "b", "c", "d"}
    assert outcomes["bad"].error == "sender: refused"
    assert outcomes["poison"].error == "connection closed"
    assert all(o.sender_receipts == 1 for n, o in outcomes.items() if o.error is None)
    # One batch, "bad" alone, the rest as a batch, "poison" alone, then "d".
    assert broker.batches == [
        ["a", "b", "bad", "c", "poison", "d"],
        ["bad"],
        ["c", "poison", "d"],
        ["poison"],
        ["d"],
    ]
    assert NOT_RUN not in {o.error for o in outcomes.values()}


def test_a_clean_batch_runs_once() -> None:
    broker = FakeBroker()
    good = [case for case in CASES if case.name not in ("bad", "poison")]

    outcomes = run_exchange(broker.send, broker.receive, good)

    assert broker.batches == [["a", "b", "c", "d"]]
    assert all(o.received is not None and o.error is None for o in outcomes.values())
