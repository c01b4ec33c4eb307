"""RabbitMQ's destinations and STOMP extensions, over Web STOMP and plain STOMP.

https://www.rabbitmq.com/docs/stomp names them: /queue/, /topic/, /exchange/EXCHANGE/KEY,
/amq/queue/ (an existing queue only), reply-to /temp-queue/, durable topic subscriptions,
prefetch-count and persistent. Every test runs on both transports and every STOMP version.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import stomp  # type: ignore[import-untyped]

import stompws

from ..integration.support import drain_until
from ..support.recording import Collector, Recorder
from .conftest import Require
from .support import (
    LOGIN,
    PASSCODE,
    RABBITMQ_TCP,
    RABBITMQ_WS,
    WAIT,
    Target,
    new_queue,
    stompws_client,
    targets,
)

SECTION = "RabbitMQ destinations and extensions"
pytestmark = [pytest.mark.integration]
TARGETS = targets(SECTION, RABBITMQ_WS, RABBITMQ_TCP)

Make = Callable[..., stompws.Client]


@pytest.fixture
def make(target: Target, require: Require) -> Iterator[Make]:
    """Connected clients for the target; each is disconnected at teardown."""
    require(target.endpoint.name)
    made: list[stompws.Client] = []

    def connect(*listeners: stompws.Listener, **options: Any) -> stompws.Client:
        client = stompws_client(target.endpoint.url, target.version, **options)
        made.append(client)
        for listener in listeners:
            client.add_listener(listener)
        client.connect(timeout=WAIT)
        assert client.version == target.version
        return client

    yield connect
    for client in made:
        client.disconnect(timeout=5.0)


def _name() -> str:
    return f"stompws-interop-{uuid.uuid4().hex}"


@pytest.mark.parametrize("target", targets(SECTION, RABBITMQ_WS, RABBITMQ_TCP, versions=["1.1"]))
def test_carriage_return_in_a_header_reaches_a_stomp_1_1_reader(make: Make, target: Target) -> None:
    """RabbitMQ sends a CR in a header as ``\\r`` on STOMP 1.1 too, which 1.1 does not
    define: the reader takes it (a leniency), instead of ending the session over it."""
    reader = make()
    queue = new_queue()
    inbox = Collector()
    reader.subscribe(queue, callback=inbox, receipt=True)
    writer = stompws_client(target.endpoint.url, "1.2")  # 1.1 cannot send a CR in a header
    writer.connect(timeout=WAIT)
    try:
        writer.send(queue, "cr", headers={"x-cr": "a\rb"}, receipt=True).wait(WAIT)
    finally:
        writer.disconnect(timeout=5.0)
    [frame] = inbox.wait_for(1)
    assert frame.headers["x-cr"] == "a\rb"
    reader.send(queue, "after")  # the session lives on
    assert [f.text for f in inbox.wait_for(2)] == ["cr", "after"]


@pytest.mark.compat_table(SECTION, feature="`/queue/`: each message to one consumer")
@pytest.mark.parametrize("target", TARGETS)
def test_queue(make: Make) -> None:
    client = make()
    queue = new_queue()
    inbox = Collector()
    first = client.subscribe(queue, callback=inbox, receipt=True)
    second = client.subscribe(queue, callback=inbox, receipt=True)

    for n in range(4):
        client.send(queue, f"m{n}")

    frames = inbox.wait_for(4)
    assert sorted(frame.text for frame in frames) == ["m0", "m1", "m2", "m3"]
    # Competing consumers: RabbitMQ hands them out round robin.
    assert {frame.headers["subscription"] for frame in frames} == {first.id, second.id}


@pytest.mark.compat_table(SECTION, feature="`/topic/`: a copy to every subscriber")
@pytest.mark.parametrize("target", TARGETS)
def test_topic(make: Make) -> None:
    client = make()
    topic = f"/topic/{_name()}"
    first = client.subscribe(topic, receipt=True)
    second = client.subscribe(topic, receipt=True)

    client.send(topic, "to all", receipt=True)

    assert first.get(timeout=WAIT).text == "to all"
    assert second.get(timeout=WAIT).text == "to all"


@pytest.mark.compat_table(SECTION, feature="`/exchange/amq.direct/KEY`: routing by key")
@pytest.mark.parametrize("target", TARGETS)
def test_exchange_with_routing_key(make: Make) -> None:
    client = make()
    key, other = _name(), _name()
    wanted = client.subscribe(f"/exchange/amq.direct/{key}", receipt=True)
    unwanted = client.subscribe(f"/exchange/amq.direct/{other}", receipt=True)

    client.send(f"/exchange/amq.direct/{key}", "for key")
    client.send(f"/exchange/amq.direct/{other}", "sentinel", receipt=True)

    frame = wanted.get(timeout=WAIT)
    assert frame.text == "for key"
    assert frame.headers["destination"] == f"/exchange/amq.direct/{key}"
    assert drain_until(unwanted, "sentinel") == []  # nothing for the other key before it


@pytest.mark.compat_table(SECTION, feature="`/amq/queue/` of an existing queue")
@pytest.mark.parametrize("target", TARGETS)
def test_amq_queue(make: Make) -> None:
    client = make()
    name = _name()
    # /queue/NAME declares the queue NAME; /amq/queue/NAME uses it without declaring.
    client.send(f"/queue/{name}", "declared", receipt=True)

    subscription = client.subscribe(f"/amq/queue/{name}", receipt=True)

    assert subscription.get(timeout=WAIT).text == "declared"


@pytest.mark.compat_table(SECTION, feature="`/amq/queue/` of a missing queue: refused")
@pytest.mark.parametrize("target", TARGETS)
def test_amq_queue_missing(target: Target, make: Make, quirk: Callable[[str], None]) -> None:
    recorder = Recorder()
    client = make(recorder)

    with pytest.raises(stompws.StompError) as raised:
        client.subscribe(f"/amq/queue/{_name()}", receipt=True)
    failure = raised.value
    assert client.subscriptions == []
    if not target.websocket:
        # Over TCP RabbitMQ sends the ERROR (with no receipt-id), then the RECEIPT of the
        # refused SUBSCRIBE, then closes: the client holds such a RECEIPT in doubt and
        # fails the SUBSCRIBE with the ERROR when the close follows.
        quirk(
            "over TCP RabbitMQ sends the RECEIPT of the refused SUBSCRIBE after its ERROR "
            "(which names no receipt); stompws raises the ERROR from `subscribe()` all the same"
        )

    (reason,) = recorder.wait_for("disconnected")
    assert not client.is_connected
    if target.websocket:
        # Broker quirk: Web STOMP closes (1000, "STOMP died") without an ERROR frame.
        assert isinstance(failure, stompws.ConnectionClosed)
        assert isinstance(reason, stompws.ConnectionClosed)
        assert (reason.code, reason.reason) == (1000, "STOMP died")
        assert recorder.of("error") == []
        quirk("over WebSocket the refusal is a close (1000, `STOMP died`), with no ERROR frame")
    else:
        assert isinstance(failure, stompws.BrokerError)
        assert isinstance(reason, stompws.BrokerError)
        (frame,) = recorder.of("error")
        assert frame.headers["message"] == "not_found"


class _Service:
    """Answers each request on ``reply-to``, as a RabbitMQ RPC server would."""

    def __init__(self, client: stompws.Client) -> None:
        self.client = client
        self.reply_to: list[str] = []

    def __call__(self, frame: stompws.Frame) -> None:
        reply_to = frame.headers["reply-to"]
        self.reply_to.append(reply_to)
        self.client.send(
            reply_to,
            f"re: {frame.text}",
            headers={"correlation-id": frame.headers["correlation-id"]},
        )


@pytest.mark.compat_table(SECTION, feature="`reply-to:/temp-queue/`: reply to a listener")
@pytest.mark.parametrize("target", TARGETS)
def test_temp_queue_reply_reaches_listener(make: Make) -> None:
    recorder = Recorder()
    requester = make(recorder)
    responder = make()
    service = new_queue()
    responder.subscribe(service, callback=_Service(responder), receipt=True)

    requester.send(
        service, "ping", headers={"reply-to": "/temp-queue/replies", "correlation-id": "c-1"}
    )

    (reply,) = recorder.wait_for("message")
    assert reply.text == "re: ping"
    assert reply.headers["correlation-id"] == "c-1"
    # The reply comes with a subscription the requester never made: its listeners get it,
    # and no Subscription does.
    assert reply.headers["subscription"] == "/temp-queue/replies"
    assert requester.subscriptions == []


@pytest.mark.compat_table(SECTION, feature="`reply-to:/temp-queue/`: warning without a listener")
@pytest.mark.parametrize("target", TARGETS)
def test_temp_queue_reply_without_listener_is_logged(
    make: Make, caplog: pytest.LogCaptureFixture
) -> None:
    requester = make()
    responder = make()
    service = new_queue()
    answered = _Service(responder)
    responder.subscribe(service, callback=answered, receipt=True)
    caplog.set_level(logging.WARNING, logger="stompws.client")

    requester.send(
        service, "ping", headers={"reply-to": "/temp-queue/replies", "correlation-id": "c-2"}
    )

    # The reply is not dropped silently: the client says why nobody received it.
    deadline = time.monotonic() + WAIT
    while not any("/temp-queue/replies" in r.getMessage() for r in caplog.records):
        assert time.monotonic() < deadline, "no warning for the unreceived reply"
        time.sleep(0.01)
    assert answered.reply_to[0].startswith("/reply-queue/")


def _delete_durable_subscription(sub_id: str, topic: str) -> None:
    # stompws.unsubscribe() sends no extra headers, and RabbitMQ deletes a durable
    # subscription's queue only on an UNSUBSCRIBE with durable:true: stomp.py can send one.
    connection = stomp.Connection12([("127.0.0.1", RABBITMQ_TCP.port)], vhost="/")
    connection.connect(LOGIN, PASSCODE, wait=True)
    try:
        connection.subscribe(topic, id=sub_id, headers={"durable": "true", "auto-delete": "false"})
        connection.unsubscribe(id=sub_id, headers={"durable": "true", "receipt": "gone"})
    finally:
        connection.disconnect()


@pytest.mark.compat_table(SECTION, feature="durable topic subscription (`durable`, `auto-delete`)")
@pytest.mark.parametrize("target", TARGETS)
def test_durable_topic_subscription(make: Make) -> None:
    topic = f"/topic/{_name()}"
    sub_id = _name()
    durable = {"durable": "true", "auto-delete": "false"}
    try:
        first = make()
        first.subscribe(topic, id=sub_id, headers=durable, receipt=True)
        first.disconnect()

        make().send(topic, "while away", receipt=True)  # kept for the durable subscription

        again = make().subscribe(topic, id=sub_id, headers=durable, receipt=True)
        assert again.get(timeout=WAIT).text == "while away"
    finally:
        _delete_durable_subscription(sub_id, topic)


@pytest.mark.compat_table(SECTION, feature="`prefetch-count`")
@pytest.mark.parametrize("target", TARGETS)
def test_prefetch_count(make: Make) -> None:
    client = make()
    queue = new_queue()
    slow, fast = Collector(), Collector()
    # The slow consumer never acks: with prefetch-count 1 RabbitMQ gives it one message and
    # every other one to the fast consumer (without it, round robin would give it half).
    client.subscribe(
        queue, ack="client", headers={"prefetch-count": "1"}, callback=slow, receipt=True
    )
    client.subscribe(queue, callback=fast, receipt=True)

    for n in range(6):
        client.send(queue, f"m{n}")

    assert len(fast.wait_for(5)) == 5
    assert len(slow.wait_for(1)) == 1


@pytest.mark.compat_table(SECTION, feature="`persistent:true`")
@pytest.mark.parametrize("target", TARGETS)
def test_persistent(make: Make) -> None:
    client = make()
    queue = new_queue()
    subscription = client.subscribe(queue, receipt=True)

    client.send(queue, "kept on disk", headers={"persistent": "true"})
    client.send(queue, "transient")

    assert subscription.get(timeout=WAIT).headers.get("persistent") == "true"
    assert "persistent" not in subscription.get(timeout=WAIT).headers
