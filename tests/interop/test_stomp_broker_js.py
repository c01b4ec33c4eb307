"""stomp-broker-js 1.3 (npm) as another WebSocket broker, run by scripts/interop/stomp_broker.cjs.

It speaks STOMP 1.1 only (whatever the client offers), does publish/subscribe only (every
destination is a topic), never delivers a message to the connection that sent it, and
sends no RECEIPT but the DISCONNECT one. So each test uses two stompws clients, a publisher
and a subscriber, and learns that a subscription is live by publishing probes until one
arrives (no receipt can say so).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import websocket

import stompws

from .conftest import NodeBroker
from .support import CASES, WAIT, Case

SECTION = "stomp-broker-js"
pytestmark = [pytest.mark.integration, pytest.mark.compat_table(SECTION)]


@dataclass(frozen=True)
class Where:
    """The one column and version of this section, for the compatibility table."""

    column: str = "stomp-broker-js 1.3 WebSocket"
    version: str = "1.1"


WHERE = Where()
Make = Callable[..., stompws.Client]


@pytest.fixture(params=[WHERE], ids=["stomp-broker-js-1.1"])
def target(request: pytest.FixtureRequest) -> Where:
    where: Where = request.param
    return where


@pytest.fixture
def make(stomp_broker_js: NodeBroker, target: Where) -> Iterator[Make]:
    made: list[stompws.Client] = []

    def connect(**options: Any) -> stompws.Client:
        options.setdefault("heartbeats", (0, 0))
        client = stompws.Client(stomp_broker_js.url, login="any", passcode="any", **options)
        made.append(client)
        client.connect(timeout=WAIT)
        return client

    yield connect
    for client in made:
        client.disconnect(timeout=5.0)


def _topic() -> str:
    return f"/topic/stompws-interop-{uuid.uuid4().hex}"


def _live(publisher: stompws.Client, topic: str, *subscriptions: stompws.Subscription) -> None:
    """Publish probes until each subscription got one, then drop the probes that follow.

    Frames of one connection are handled in order, so once a probe arrived every later
    message of the publisher reaches the subscription too."""
    for subscription in subscriptions:
        for _ in range(int(WAIT / 0.05)):
            publisher.send(topic, "probe", headers={"x-case": "probe"})
            try:
                subscription.get(timeout=0.05)
                break
            except stompws.ReceiveTimeout:
                continue
        else:
            raise AssertionError(f"no probe reached {subscription} within {WAIT:g} s")
    publisher.send(topic, "probes end", headers={"x-case": "probes-end"})
    for subscription in subscriptions:
        while subscription.get(timeout=WAIT).headers.get("x-case") != "probes-end":
            pass


@pytest.mark.compat_table(SECTION, feature="connect: negotiates STOMP 1.1")
def test_negotiates_1_1(make: Make) -> None:
    client = make()  # offers 1.0, 1.1 and 1.2

    assert client.version == "1.1"
    assert client.server == "STOMP-JS/1.3.0"


@pytest.mark.compat_table(SECTION, feature="offering only 1.0 or only 1.2")
@pytest.mark.parametrize("offered", ["1.0", "1.2"])
def test_answers_1_1_to_any_offer(make: Make, offered: str, quirk: Callable[[str], None]) -> None:
    # Broker quirk: it answers version 1.1 whatever accept-version says; stompws refuses a
    # version it did not offer instead of speaking the wrong one.
    with pytest.raises(stompws.ConnectError, match="which was not offered"):
        make(versions=[offered])
    quirk("answers `version:1.1` whatever the client offers; stompws refuses the connection")


@pytest.mark.compat_table(SECTION, feature="WebSocket subprotocol")
def test_subprotocol_answer(
    stomp_broker_js: NodeBroker, make: Make, quirk: Callable[[str], None]
) -> None:
    # Broker quirk: it echoes the first subprotocol offered (here v12.stomp) and then says
    # version:1.1 in CONNECTED. stompws goes by CONNECTED, the STOMP-level answer.
    socket = websocket.create_connection(
        stomp_broker_js.url, subprotocols=["v12.stomp", "v11.stomp", "v10.stomp"], timeout=WAIT
    )
    try:
        assert socket.getsubprotocol() == "v12.stomp"
    finally:
        socket.close()
    assert make().version == "1.1"
    quirk("answers the first WebSocket subprotocol offered (v12.stomp), then CONNECTED 1.1")


# What stomp-broker-js does to each message case: None where it crosses unchanged.
BROKEN = {
    "unicode": "it counts content-length in UTF-16 units, not bytes: stompws refuses the "
    "MESSAGE (ProtocolError) and the connection ends",
    "non-utf8": "it decodes every body as UTF-8 text, so content-length is wrong: stompws "
    "refuses the MESSAGE (ProtocolError) and the connection ends",
}
CHANGED = {
    "nul": (b"", "it cuts a body at its first NUL byte (here: all of it)"),
    "blank-lines": (
        b"line one,line two\r\n\r\nend",
        'it splits frames at "\\n\\n" and joins the body parts with ","',
    ),
}


def _cases() -> list[Any]:
    return [pytest.param(case, id=case.name) for case in CASES if "1.1" in case.versions]


@pytest.mark.parametrize("case", _cases())
def test_case_crosses(make: Make, case: Case, quirk: Callable[[str], None]) -> None:
    publisher, subscriber = make(), make()
    topic = _topic()
    subscription = subscriber.subscribe(topic)
    _live(publisher, topic, subscription)

    publisher.send(
        topic,
        case.body.decode() if case.text else case.body,
        content_type=case.content_type,
        headers={**case.headers, "x-case": case.name},
    )

    if case.name in BROKEN:
        with pytest.raises(stompws.ProtocolError, match="content-length"):
            subscription.get(timeout=WAIT)
        assert not subscriber.is_connected
        quirk(BROKEN[case.name])
        return
    frame = subscription.get(timeout=WAIT)
    body, note = CHANGED.get(case.name, (case.body, None))
    assert frame.body == body
    if case.content_type is not None:
        assert frame.headers["content-type"] == case.content_type
    for name, value in case.headers.items():
        # It passes header lines through as they were written, so escapes survive.
        assert frame.headers.get(name) == value, name
    if note is not None:
        quirk(note)


@pytest.mark.compat_table(SECTION, feature="MESSAGE headers")
def test_message_headers(make: Make, quirk: Callable[[str], None]) -> None:
    publisher, subscriber = make(), make()
    topic = _topic()
    subscription = subscriber.subscribe(topic)
    _live(publisher, topic, subscription)

    publisher.send(topic, "headers")
    frame = subscription.get(timeout=WAIT)

    assert frame.headers["destination"] == topic
    assert frame.headers["subscription"] == subscription.id
    # Broker quirk: no message-id (STOMP 1.1 requires one), and an internal flag leaks.
    assert "message-id" not in frame.headers
    assert frame.headers.get("bytes_message") == "true"
    quirk("MESSAGE frames have no `message-id` and carry its internal `bytes_message:true`")


@pytest.mark.compat_table(SECTION, feature="publish/subscribe to every subscriber")
def test_every_subscriber_gets_a_copy(make: Make) -> None:
    publisher, first, second = make(), make(), make()
    topic = _topic()
    one, two = first.subscribe(topic), second.subscribe(topic)
    _live(publisher, topic, one, two)

    publisher.send(topic, "to all")

    assert one.get(timeout=WAIT).text == "to all"
    assert two.get(timeout=WAIT).text == "to all"


@pytest.mark.compat_table(SECTION, feature="no delivery to the sending connection")
def test_never_delivers_to_the_sender(make: Make) -> None:
    alice, bob = make(), make()
    topic = _topic()
    at_alice, at_bob = alice.subscribe(topic), bob.subscribe(topic)
    _live(bob, topic, at_alice)
    _live(alice, topic, at_bob)

    alice.send(topic, "from alice")
    bob.send(topic, "from bob")

    # Each gets only the other's message, though both subscribed to the topic they sent to.
    assert at_bob.get(timeout=WAIT).text == "from alice"
    assert at_alice.get(timeout=WAIT).text == "from bob"


@pytest.mark.compat_table(SECTION, feature="unsubscribe")
def test_unsubscribe(make: Make) -> None:
    publisher, subscriber = make(), make()
    topic = _topic()
    gone, kept = subscriber.subscribe(topic), subscriber.subscribe(topic)
    _live(publisher, topic, gone, kept)

    gone.unsubscribe()
    publisher.send(topic, "after")

    assert kept.get(timeout=WAIT).text == "after"
    assert subscriber.subscriptions == [kept]


@pytest.mark.compat_table(SECTION, feature="receipts (SEND, SUBSCRIBE)")
def test_no_receipts(make: Make, quirk: Callable[[str], None]) -> None:
    client = make(receipt_timeout=0.3)

    with pytest.raises(stompws.ReceiptTimeout):
        client.subscribe(_topic(), receipt=True)
    receipt = client.send(_topic(), "x", receipt=True)
    assert receipt is not None
    with pytest.raises(stompws.ReceiptTimeout):
        receipt.wait()
    assert client.is_connected
    quirk("no RECEIPT for SEND or SUBSCRIBE (only for DISCONNECT): stompws times out cleanly")


@pytest.mark.compat_table(SECTION, feature="DISCONNECT with a receipt")
def test_disconnect_receipt(make: Make) -> None:
    client = make()
    sent: list[stompws.Frame] = []

    class Watch(stompws.Listener):
        def on_receipt(self, frame: stompws.Frame) -> None:
            sent.append(frame)

    client.add_listener(Watch())
    client.disconnect(timeout=WAIT)

    assert [frame.command for frame in sent] == ["RECEIPT"]
