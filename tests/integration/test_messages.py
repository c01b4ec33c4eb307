"""Bodies and headers that must cross the real brokers unchanged."""

from __future__ import annotations

import os

import pytest

import stompws

from ..support.recording import Recorder
from .conftest import ClientFactory
from .support import WAIT, Target, targets

pytestmark = pytest.mark.brokers


def _round_trip(
    client: stompws.Client, queue: str, body: bytes | str, **options: object
) -> stompws.Frame:
    subscription = client.subscribe(queue, receipt=True)
    receipt = client.send(queue, body, receipt=True, **options)  # type: ignore[arg-type]
    assert receipt is not None
    receipt.wait(WAIT)
    return subscription.get(timeout=WAIT)


def test_text_body(client: stompws.Client, queue: str) -> None:
    frame = _round_trip(client, queue, '{"hello": "world", "n": 1}')

    assert frame.command == "MESSAGE"
    assert frame.headers["destination"] == queue
    assert frame.body == b'{"hello": "world", "n": 1}'
    assert frame.json() == {"hello": "world", "n": 1}


def test_unicode_body(client: stompws.Client, queue: str) -> None:
    text = "héllo wörld ✓ 日本語 😀"

    frame = _round_trip(client, queue, text, content_type="text/plain; charset=utf-8")

    assert frame.body == text.encode("utf-8")
    assert frame.text == text
    assert frame.headers["content-type"].startswith("text/plain")


def test_binary_body_with_nul_bytes(client: stompws.Client, queue: str) -> None:
    # Not UTF-8 either: over WebSocket it must go out as a binary message.
    body = b"\x00head\x00\xff\xfe\x80 middle \x00\x00tail\x00"

    frame = _round_trip(client, queue, body, content_type="application/octet-stream")

    assert frame.body == body
    assert frame.headers["content-length"] == str(len(body))


def test_empty_body(client: stompws.Client, queue: str) -> None:
    assert _round_trip(client, queue, b"").body == b""


def test_one_mebibyte_body(fast_client: stompws.Client, queue: str) -> None:
    body = os.urandom(1 << 20)  # random bytes: NULs and invalid UTF-8 on the way

    frame = _round_trip(fast_client, queue, body)

    assert len(frame.body) == len(body)
    assert frame.body == body


def test_send_without_content_length(target: Target, client: stompws.Client, queue: str) -> None:
    # ActiveMQ turns a SEND without content-length into a JMS TextMessage and one with it
    # into a BytesMessage; through STOMP both must arrive with the same body.
    text = "plain text, no NUL: héllo"
    subscription = client.subscribe(queue, receipt=True)

    client.send(queue, text, content_length=False)
    client.send(queue, text, content_length=True)
    without = subscription.get(timeout=WAIT)
    with_length = subscription.get(timeout=WAIT)

    assert without.text == with_length.text == text
    assert with_length.headers["content-length"] == str(len(text.encode()))
    if target.activemq:
        # Broker quirk: ActiveMQ delivers a TextMessage without content-length.
        assert "content-length" not in without.headers
    else:
        assert without.headers["content-length"] == str(len(text.encode()))


SPECIAL_HEADERS = {
    "x-colon": "key:value:more",
    "x-newline": "line one\nline two",
    "x-backslash": "C:\\path\\to\\file",
    "x-all": "a:b\\c\nd\\\\e::",
    "x-unicode": "wörld ✓",
}


@pytest.mark.parametrize("target", targets(versions=["1.1", "1.2"]), indirect=True)
def test_header_values_with_special_characters(client: stompws.Client, queue: str) -> None:
    # Escaped as \c \n \\ on the wire; both brokers unescape them and escape them again
    # in the MESSAGE (ActiveMQ writes a colon as \c), and the client unescapes.
    frame = _round_trip(client, queue, "headers", headers=SPECIAL_HEADERS)

    for name, value in SPECIAL_HEADERS.items():
        assert frame.headers.get(name) == value, name


@pytest.mark.parametrize("target", targets(versions=["1.0"]), indirect=True)
def test_header_values_on_stomp_1_0(target: Target, client: stompws.Client, queue: str) -> None:
    # STOMP 1.0 has no escapes. The client refuses what it cannot carry...
    with pytest.raises(stompws.UsageError):
        client.send(queue, "x", headers={"x-newline": "a\nb"})
    assert client.is_connected

    frame = _round_trip(client, queue, "1.0 headers", headers={"x-colon": "k:v", "x-plain": "p"})

    assert frame.headers["x-plain"] == "p"
    if target.rabbitmq:
        # Broker quirk: RabbitMQ escapes header values in a 1.0 session too, so a colon
        # comes back as the two characters "\c" (and it unescapes what a 1.0 client sends:
        # a lone backslash followed by another letter makes it close the connection).
        assert frame.headers["x-colon"] == "k\\cv"
    else:
        assert frame.headers["x-colon"] == "k:v"


@pytest.mark.parametrize("target", targets(brokers=["activemq"], versions=["1.0"]), indirect=True)
def test_activemq_raw_newline_in_a_1_0_header_is_a_protocol_error(
    make_client: ClientFactory, queue: str
) -> None:
    # Broker quirk: a header value with a newline, sent on 1.2, reaches a 1.0 consumer of
    # ActiveMQ as a raw newline that splits the header line. The client must say so
    # (ProtocolError) and end the connection, not misread the frame or hang.
    recorder = Recorder()
    consumer = make_client(listeners=[recorder])
    subscription = consumer.subscribe(queue, receipt=True)
    producer = make_client(versions=["1.2"])

    receipt = producer.send(queue, "body", headers={"x-newline": "a\nb"}, receipt=True)
    assert receipt is not None
    receipt.wait(WAIT)

    with pytest.raises(stompws.ProtocolError):
        subscription.get(timeout=WAIT)
    (reason,) = recorder.wait_for("disconnected")
    assert isinstance(reason, stompws.ProtocolError)
    assert not consumer.is_connected


@pytest.mark.parametrize("target", targets(brokers=["rabbitmq"], versions=["1.0"]), indirect=True)
def test_rabbitmq_escapes_a_1_2_newline_for_a_1_0_consumer(
    make_client: ClientFactory, queue: str
) -> None:
    # Broker quirk, the other way round from ActiveMQ: RabbitMQ escapes for 1.0 too.
    consumer = make_client()
    subscription = consumer.subscribe(queue, receipt=True)
    producer = make_client(versions=["1.2"])

    producer.send(queue, "body", headers={"x-newline": "a\nb"})

    assert subscription.get(timeout=WAIT).headers["x-newline"] == "a\\nb"
