"""The broker's destinations without any I/O: turns, credit, cumulative settling."""

from __future__ import annotations

from stompws import Frame
from stompws.testing._router import Router, Subscription


def subscription(
    router: Router, destination: str, got: list[Frame], *, ack: str = "auto", prefetch: int = 0
) -> Subscription:
    sub = Subscription(f"s{id(got)}", destination, ack, "1.2", object(), got.append, prefetch)
    router.subscribe(sub)
    return sub


def publish(router: Router, destination: str, *bodies: str) -> None:
    for body in bodies:
        router.publish(router.new_message(destination, [], body.encode()))


def test_consumers_take_turns_and_skip_those_without_credit() -> None:
    router = Router()
    a: list[Frame] = []
    b: list[Frame] = []
    c: list[Frame] = []
    subscription(router, "/queue/q", a)
    subscription(router, "/queue/q", b, ack="client", prefetch=1)
    subscription(router, "/queue/q", c)
    publish(router, "/queue/q", "1", "2", "3", "4", "5")
    assert [f.body for f in a] == [b"1", b"4"]
    assert [f.body for f in b] == [b"2"]  # its one unacked message is its whole credit
    assert [f.body for f in c] == [b"3", b"5"]


def test_messages_wait_while_nobody_has_credit() -> None:
    router = Router()
    got: list[Frame] = []
    sub = subscription(router, "/queue/q", got, ack="client-individual", prefetch=2)
    publish(router, "/queue/q", "1", "2", "3")
    assert router.queue_depth("/queue/q") == 1
    router.settle(sub.unacked[got[0].headers["ack"]], True)
    assert [f.body for f in got] == [b"1", b"2", b"3"]
    assert router.queue_depth("/queue/q") == 0


def test_client_mode_settles_everything_up_to_the_message() -> None:
    router = Router()
    got: list[Frame] = []
    sub = subscription(router, "/queue/q", got, ack="client")
    publish(router, "/queue/q", "1", "2", "3")
    router.settle(sub.unacked[got[1].headers["ack"]], True)
    assert [d.message.body for d in sub.unacked.values()] == [b"3"]
    assert list(router.unacked) == list(sub.unacked)


def test_leaving_consumers_hand_back_in_order_and_keep_turns_fair() -> None:
    router = Router()
    a: list[Frame] = []
    b: list[Frame] = []
    first = subscription(router, "/queue/q", a, ack="client-individual")
    subscription(router, "/queue/q", b)
    publish(router, "/queue/q", "1", "2", "3")
    assert [f.body for f in a] == [b"1", b"3"]
    router.unsubscribe([first])
    assert [f.body for f in b] == [b"2", b"1", b"3"]
    assert all(f.headers["redelivered"] == "true" for f in b[1:])
    assert not router.unacked


def test_a_topic_subscription_drops_its_messages_when_it_ends() -> None:
    router = Router()
    got: list[Frame] = []
    sub = subscription(router, "/topic/t", got, ack="client")
    publish(router, "/topic/t", "1")
    router.unsubscribe([sub])
    assert not router.unacked
    assert "/topic/t" not in router.topics
    publish(router, "/topic/t", "2")  # nobody listens: dropped, not kept
    assert [f.body for f in got] == [b"1"]
