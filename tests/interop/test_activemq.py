"""ActiveMQ Classic's STOMP dialect: selectors, persistence, JMS message types, queues and
topics, cumulative acks. Over TCP (Debian builds ActiveMQ without its WebSocket transport),
on every STOMP version."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import stompws

from ..integration.support import drain_until
from ..support.recording import Collector
from .conftest import Require
from .support import ACTIVEMQ_TCP, WAIT, Target, new_queue, stompws_client, targets

SECTION = "ActiveMQ"
pytestmark = [pytest.mark.integration]
TARGETS = targets(SECTION, ACTIVEMQ_TCP)

Make = Callable[..., stompws.Client]


@pytest.fixture
def make(target: Target, require: Require) -> Iterator[Make]:
    """Connected clients for the target; each is disconnected at teardown."""
    require(target.endpoint.name)
    made: list[stompws.Client] = []

    def connect(**options: Any) -> stompws.Client:
        client = stompws_client(target.endpoint.url, target.version, **options)
        made.append(client)
        client.connect(timeout=WAIT)
        assert client.version == target.version
        return client

    yield connect
    for client in made:
        client.disconnect(timeout=5.0)


@pytest.mark.compat_table(SECTION, feature="`selector` on headers")
@pytest.mark.parametrize("target", TARGETS)
def test_selector(make: Make) -> None:
    client = make()
    queue = new_queue()
    red = client.subscribe(queue, headers={"selector": "color = 'red'"}, receipt=True)

    for color in ("red", "blue", "red"):
        client.send(queue, color, headers={"color": color})
    client.send(queue, "sentinel", headers={"color": "red"})

    # The blue one stays in the queue: nobody selected it.
    assert drain_until(red, "sentinel") == ["red", "red"]


@pytest.mark.compat_table(SECTION, feature="`selector` on a number and on `type` (JMSType)")
@pytest.mark.parametrize("target", TARGETS)
def test_selector_on_number_and_jms_type(make: Make) -> None:
    client = make()
    queue = new_queue()
    # STOMP headers are strings, yet ActiveMQ compares "2" > 1 as a number; and the STOMP
    # `type` header is the JMSType that JMS selectors see.
    chosen = client.subscribe(
        queue, headers={"selector": "n > 1 AND JMSType = 'order'"}, receipt=True
    )

    client.send(queue, "small", headers={"n": "1", "type": "order"})
    client.send(queue, "other type", headers={"n": "5", "type": "note"})
    client.send(queue, "big order", headers={"n": "2", "type": "order"})
    client.send(queue, "sentinel", headers={"n": "9", "type": "order"})

    assert drain_until(chosen, "sentinel") == ["big order"]


@pytest.mark.compat_table(SECTION, feature="`persistent:true`")
@pytest.mark.parametrize("target", TARGETS)
def test_persistent(make: Make) -> None:
    client = make()
    queue = new_queue()
    persistent = client.subscribe(queue, receipt=True)
    transient = client.subscribe(f"{queue}-transient", receipt=True)

    # Separate queues: ActiveMQ may deliver a later non-persistent message before an
    # earlier persistent one (it is stored first), so their order is not compared.
    client.send(queue, "kept on disk", headers={"persistent": "true"}, receipt=True)
    client.send(f"{queue}-transient", "transient", receipt=True)

    assert persistent.get(timeout=WAIT).headers.get("persistent") == "true"
    assert "persistent" not in transient.get(timeout=WAIT).headers


@pytest.mark.compat_table(SECTION, feature="TextMessage (no content-length) vs BytesMessage")
@pytest.mark.parametrize("target", TARGETS)
def test_text_and_bytes_message(make: Make, quirk: Callable[[str], None]) -> None:
    client = make()
    queue = new_queue()
    subscription = client.subscribe(queue, receipt=True)
    text = "plain text, héllo"

    client.send(queue, text, content_length=False)  # a JMS TextMessage
    client.send(queue, text, content_length=True)  # a JMS BytesMessage
    as_text = subscription.get(timeout=WAIT)
    as_bytes = subscription.get(timeout=WAIT)

    # The body is the same; what tells the JMS types apart over STOMP is content-length,
    # which ActiveMQ puts only on a BytesMessage.
    assert as_text.text == as_bytes.text == text
    assert "content-length" not in as_text.headers
    assert as_bytes.headers["content-length"] == str(len(text.encode()))
    quirk("a TextMessage arrives without content-length, a BytesMessage with it")


@pytest.mark.compat_table(SECTION, feature="queues: each message to one consumer")
@pytest.mark.parametrize("target", TARGETS)
def test_queue(make: Make) -> None:
    client = make()
    queue = new_queue()
    inbox = Collector()
    client.subscribe(queue, callback=inbox, receipt=True)
    client.subscribe(queue, callback=inbox, receipt=True)

    for n in range(4):
        client.send(queue, f"m{n}")

    frames = inbox.wait_for(4)
    assert sorted(frame.text for frame in frames) == ["m0", "m1", "m2", "m3"]
    assert len({frame.headers["message-id"] for frame in frames}) == 4


@pytest.mark.compat_table(SECTION, feature="topics: a copy to every subscriber")
@pytest.mark.parametrize("target", TARGETS)
def test_topic(make: Make) -> None:
    client = make()
    topic = f"/topic/stompws-interop-{uuid.uuid4().hex}"
    first = client.subscribe(topic, receipt=True)
    second = make().subscribe(topic, receipt=True)

    client.send(topic, "to all", receipt=True)

    assert first.get(timeout=WAIT).text == "to all"
    assert second.get(timeout=WAIT).text == "to all"


@pytest.mark.compat_table(SECTION, feature="`client` acks are cumulative")
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("acked", [1, 2], ids=["ack-second", "ack-last"])
def test_client_ack_is_cumulative(make: Make, acked: int) -> None:
    queue = new_queue()
    consumer = make()
    subscription = consumer.subscribe(queue, ack="client", receipt=True)
    for n in range(3):
        consumer.send(queue, f"m{n}")
    frames = [subscription.get(timeout=WAIT) for _ in range(3)]

    # Acking message `acked` acks it and every message before it on the subscription.
    receipt = consumer.ack(frames[acked], receipt=True)
    assert receipt is not None
    receipt.wait(WAIT)
    consumer.disconnect()

    again = make()
    redelivered = again.subscribe(queue, receipt=True)
    again.send(queue, "sentinel")
    assert drain_until(redelivered, "sentinel") == [f"m{n}" for n in range(acked + 1, 3)]
