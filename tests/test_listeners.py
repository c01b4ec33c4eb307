"""Ready-made listeners, the dispatch that isolates errors, and subscription buffering."""

from __future__ import annotations

import io
import logging
import threading

import pytest

from stompws import (
    ConnectionClosed,
    Frame,
    Listener,
    PrintingListener,
    StatsListener,
    WaitingListener,
)
from stompws.listener import Listeners
from stompws.transport import parse_url

from .fakes import Peer, fake_broker
from .test_client import client_for, message


def test_printing_listener_never_shows_secrets() -> None:
    out = io.StringIO()
    printer = PrintingListener(out)
    printer.on_connecting("ws://127.0.0.1:1/ws")
    printer.on_send(Frame("CONNECT", {"login": "u", "passcode": "hunter2"}))
    printer.on_message(Frame("MESSAGE", {"destination": "/q"}, "h\u00e9"))
    printer.on_disconnected(ConnectionClosed("gone", code=1000))
    printer.on_disconnected(None)
    printer.on_heartbeat()
    text = out.getvalue()
    assert "hunter2" not in text
    assert "passcode:***" in text
    assert "on_message: MESSAGE destination:/q | h\u00e9" in text
    assert "on_disconnected: ConnectionClosed('gone (close code 1000)')" in text


def test_stats_listener_counts() -> None:
    stats = StatsListener()
    stats.on_connected(Frame("CONNECTED"))
    for _ in range(3):
        stats.on_message(Frame("MESSAGE"))
    stats.on_heartbeat()
    stats.on_disconnected(None)
    assert (stats.connections, stats.messages, stats.heartbeats, stats.disconnects) == (1, 3, 1, 1)
    assert "messages=3" in str(stats)


def test_waiting_listener_times_out_and_sees_disconnects() -> None:
    waiting = WaitingListener()
    with pytest.raises(TimeoutError, match=r"no message within 0\.05 s"):
        waiting.wait_for_message(0.05)
    threading.Timer(0.05, waiting.on_disconnected, args=(ConnectionClosed("x"),)).start()
    with pytest.raises(ConnectionClosed, match="disconnected while waiting for message"):
        waiting.wait_for_message(5)
    assert isinstance(waiting.wait_for_disconnect(1), ConnectionClosed)


def test_waiting_listener_receipts() -> None:
    waiting = WaitingListener()
    waiting.on_receipt(Frame("RECEIPT", {"receipt-id": "a"}))
    waiting.on_receipt(Frame("RECEIPT", {"receipt-id": "b"}))
    assert waiting.wait_for_receipt("b", 1).headers["receipt-id"] == "b"
    with pytest.raises(TimeoutError):
        waiting.wait_for_receipt("c", 0.01)


def test_dispatch_order_and_error_isolation(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[str] = []

    class Named(Listener):
        def __init__(self, name: str, fail: bool = False) -> None:
            self.name = name
            self.fail = fail

        def on_heartbeat(self) -> None:
            calls.append(self.name)
            if self.fail:
                raise ValueError(self.name)

        def on_listener_error(self, exc: BaseException, event: str) -> None:
            calls.append(f"{self.name} saw {exc} in {event}")
            raise RuntimeError("and this one raises too")

    listeners = Listeners()
    first, second, third = Named("a"), Named("b", fail=True), Named("c")
    for listener in (first, second, third):
        listeners.add(listener)
    with caplog.at_level(logging.ERROR, logger="stompws.listener"):
        listeners.call("on_heartbeat")
    assert calls == ["a", "b", "a saw b in on_heartbeat", "c saw b in on_heartbeat", "c"]
    assert "raised in on_heartbeat" in caplog.text and "Traceback" in caplog.text
    listeners.remove(second)
    assert list(listeners) == [first, third]


def test_handle_message_detects_overrides() -> None:
    listeners = Listeners()
    listeners.add(Listener())
    assert not listeners.handle_message()
    listeners.add(StatsListener())
    assert listeners.handle_message()


@pytest.mark.parametrize(
    ("url", "scheme", "host", "port", "path", "login", "passcode"),
    [
        ("ws://h/ws", "ws", "h", 80, "/ws", None, None),
        ("wss://u:pw-s3cret@h:8443/ws?x=1", "wss", "h", 8443, "/ws?x=1", "u", "pw-s3cret"),
        ("stomp://h", "stomp", "h", 61613, "/", None, None),
        ("stomp+ssl://a%40b:%3Ax@h:1", "stomp+ssl", "h", 1, "/", "a@b", ":x"),
        ("ws://[::1]:9/", "ws", "::1", 9, "/", None, None),
    ],
)
def test_parse_url(
    url: str, scheme: str, host: str, port: int, path: str, login: str | None, passcode: str | None
) -> None:
    endpoint = parse_url(url)
    assert (endpoint.scheme, endpoint.host, endpoint.port, endpoint.path) == (
        scheme,
        host,
        port,
        path,
    )
    assert (endpoint.login, endpoint.passcode) == (login, passcode)
    assert "@" not in endpoint.url
    assert passcode is None or (passcode not in repr(endpoint) and passcode not in endpoint.url)


def test_bad_urls_never_echo_the_password() -> None:
    with pytest.raises(ValueError, match=r"\*\*\*@h") as caught:
        parse_url("ftp://u:sekrit@h/")
    assert "sekrit" not in str(caught.value)
    with pytest.raises(ValueError, match="bad port"):
        parse_url("ws://h:99999/")


def buffered_script(count: int, sent: threading.Event) -> object:
    def script(peer: Peer) -> None:
        peer.accept_connect()
        sub = peer.frame()
        assert sub is not None
        for n in range(count):
            peer.send(message(sub.headers["id"], n))
        sent.set()
        peer.answer_receipts_until_disconnect()

    return script


def test_full_buffer_without_listeners_holds_the_reader_and_loses_nothing() -> None:
    sent = threading.Event()
    with fake_broker(buffered_script(20, sent)) as broker:  # type: ignore[arg-type]
        client = client_for(broker.url)
        client.connect()
        subscription = client.subscribe("/q", max_buffered=5)
        texts = [subscription.get(5).text for _ in range(20)]
        assert texts == [f"m{n}" for n in range(20)]
        assert subscription.discarded == 0
        client.disconnect()


def test_a_message_listener_does_not_make_a_full_buffer_drop() -> None:
    # Losing data is never a side effect: a listener that also sees the messages does not
    # change what the buffer does when full (it holds the reader).
    sent = threading.Event()
    with fake_broker(buffered_script(20, sent)) as broker:  # type: ignore[arg-type]
        client = client_for(broker.url)
        client.add_listener(StatsListener())
        client.connect()
        subscription = client.subscribe("/q", max_buffered=2)
        texts = [subscription.get(5).text for _ in range(20)]
        assert texts == [f"m{n}" for n in range(20)]
        assert subscription.discarded == 0
        client.disconnect()


def test_full_buffer_drops_the_oldest_only_when_asked() -> None:
    sent = threading.Event()
    with fake_broker(buffered_script(20, sent)) as broker:  # type: ignore[arg-type]
        waiting = WaitingListener()
        client = client_for(broker.url)
        client.add_listener(waiting)
        client.connect()
        subscription = client.subscribe("/q", max_buffered=5, overflow="drop-oldest")
        assert len(waiting.wait_for_messages(20, 5)) == 20
        assert [subscription.get(1).text for _ in range(5)] == [f"m{n}" for n in range(15, 20)]
        assert subscription.discarded == 15
        client.disconnect()


def test_iteration_ends_at_unsubscribe() -> None:
    sent = threading.Event()
    with fake_broker(buffered_script(3, sent)) as broker:  # type: ignore[arg-type]
        client = client_for(broker.url)
        client.connect()
        subscription = client.subscribe("/q")
        seen = []
        for frame in subscription:
            seen.append(frame.text)
            if len(seen) == 3:
                subscription.unsubscribe()
        assert seen == ["m0", "m1", "m2"]
        assert client.subscriptions == []
        client.disconnect()
