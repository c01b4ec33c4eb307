"""Starting and stopping: URLs, listeners, arguments, and a stop() that never hangs."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

import pytest

import stompws
from stompws.testing import Broker

from ..support.process import thread_idents
from .support import WAIT, RawPeer

Raw = Callable[..., RawPeer]
Connect = Callable[..., stompws.Client]


def broker_threads(before: set[int | None]) -> list[str]:
    """The broker threads alive now that were not at ``before`` (``thread_idents()`` at the
    test's start): a broker another suite keeps running is not this test's."""
    return [
        t.name
        for t in threading.enumerate()
        if t.name.startswith("stompws-testbroker") and t.ident not in before
    ]


def test_urls_exist_once_started() -> None:
    broker = Broker()
    with pytest.raises(stompws.UsageError, match="new"):
        _ = broker.ws_url
    with broker:
        assert broker.ws_url == f"ws://127.0.0.1:{broker.ws_port}/ws"
        assert broker.tcp_url == f"stomp://127.0.0.1:{broker.tcp_port}"
        assert broker.urls == [broker.ws_url, broker.tcp_url]
        assert broker.ws_port != broker.tcp_port
        assert broker.running
        assert "running" in repr(broker)
    assert not broker.running


@pytest.mark.parametrize(("websocket", "tcp"), [(True, False), (False, True)])
def test_one_listener_only(websocket: bool, tcp: bool, clients: Connect) -> None:
    with Broker(websocket=websocket, tcp=tcp) as broker:
        assert len(broker.urls) == 1
        missing = "tcp_url" if websocket else "ws_url"
        with pytest.raises(stompws.UsageError, match="without"):
            getattr(broker, missing)
        client = clients(broker.urls[0])
        assert client.is_connected
        client.disconnect()


@pytest.mark.parametrize(
    "options",
    [
        {"websocket": False, "tcp": False},
        {"versions": ()},
        {"versions": ("1.3",)},
        {"heartbeats": (-1, 0)},
        {"heartbeat_tolerance": 0.5},
        {"max_frame_size": 0},
        {"close_timeout": 0},
    ],
)
def test_bad_arguments_are_usage_errors(options: dict[str, object]) -> None:
    with pytest.raises(stompws.UsageError):
        Broker(**options)  # type: ignore[arg-type]


def test_a_stopped_broker_does_not_start_again() -> None:
    broker = Broker(websocket=False).start()
    broker.stop()
    broker.stop()  # again: nothing happens
    with pytest.raises(stompws.UsageError, match="create a new Broker"):
        broker.start()


def test_a_new_broker_on_the_same_ports_after_stop(clients: Connect) -> None:
    with Broker() as first:
        ports = (first.ws_port, first.tcp_port)
        assert clients(first.tcp_url).is_connected
    assert ports[0] is not None and ports[1] is not None
    with Broker(port=ports[0], tcp_port=ports[1]) as second:
        assert (second.ws_port, second.tcp_port) == ports
        assert clients(second.ws_url).is_connected


@pytest.mark.process_state
def test_a_port_in_use_is_an_os_error() -> None:
    """Process state: looks for broker threads anywhere in the process."""
    before = thread_idents()
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match="in use"):
            Broker(tcp_port=port).start()
    assert broker_threads(before) == []


@pytest.mark.process_state
@pytest.mark.parametrize("transport", ["ws", "tcp"])
def test_stop_disconnects_clients_and_joins_every_thread(transport: str, clients: Connect) -> None:
    """Process state: looks for broker threads anywhere in the process."""
    before = thread_idents()
    broker = Broker().start()
    target = broker.ws_url if transport == "ws" else broker.tcp_url
    client = clients(target)
    events = stompws.WaitingListener()
    client.add_listener(events)
    start = time.monotonic()
    broker.stop()
    assert time.monotonic() - start < 2.0
    assert broker_threads(before) == []
    assert isinstance(events.wait_for_disconnect(WAIT), stompws.ConnectionClosed)


@pytest.mark.process_state
def test_stop_does_not_wait_for_clients_that_never_spoke() -> None:
    """Process state: looks for broker threads anywhere in the process."""
    before = thread_idents()
    broker = Broker().start()
    assert broker.ws_port is not None and broker.tcp_port is not None
    silent = [
        socket.create_connection(("127.0.0.1", broker.ws_port)),  # no HTTP request
        socket.create_connection(("127.0.0.1", broker.tcp_port)),  # no CONNECT
    ]
    try:
        start = time.monotonic()
        broker.stop()
        assert time.monotonic() - start < 2.5
        assert broker_threads(before) == []
    finally:
        for sock in silent:
            sock.close()


@pytest.mark.process_state
@pytest.mark.parametrize("transport", ["ws", "tcp"])
def test_stop_does_not_hang_on_a_client_that_stopped_reading(transport: str, raw: Raw) -> None:
    """Process state: looks for broker threads anywhere in the process."""
    before = thread_idents()
    broker = Broker().start()
    stuck = raw(broker.ws_url if transport == "ws" else broker.tcp_url)
    stuck.connect()
    stuck.send_frame("SUBSCRIBE", {"id": "s", "destination": "/queue/flood", "receipt": "r"})
    stuck.expect("RECEIPT")
    producer = raw(broker.tcp_url)
    producer.connect()
    chunk = b"x" * (512 * 1024)
    for _ in range(64):  # 32 MiB, far more than socket buffers hold: the writer blocks
        producer.send_frame("SEND", {"destination": "/queue/flood"}, chunk)
    producer.send_frame("SEND", {"destination": "/queue/flood", "receipt": "sent"})
    producer.expect("RECEIPT")
    start = time.monotonic()
    broker.stop(timeout=5.0)
    assert time.monotonic() - start < 3.5
    assert broker_threads(before) == []


def test_wait_for_connections_times_out(broker: Broker) -> None:
    with pytest.raises(TimeoutError, match="1 STOMP session"):
        broker.wait_for_connections(1, timeout=0.05)


def test_a_connect_and_frames_after_it_in_one_write_use_the_new_version(
    broker: Broker, raw: Raw
) -> None:
    peer = raw(broker.tcp_url, version="1.0")
    # STOMP 1.0 has no escapes: the backslash in this id is a plain character. Parsed as
    # 1.2 (before the version is known), it would be an undefined escape.
    peer.send(
        b"CONNECT\n\n\x00"
        b"SUBSCRIBE\nid:a\\d\ndestination:/queue/pipelined\n\n\x00"
        b"SEND\ndestination:/queue/pipelined\n\nhi\x00"
    )
    assert "version" not in peer.expect("CONNECTED").headers  # 1.0 asked for no version
    message = peer.expect("MESSAGE")
    assert message.headers["subscription"] == "a\\d"


def test_stomp_1_0_subscriptions_without_id(broker: Broker, raw: Raw) -> None:
    peer = raw(broker.tcp_url, version="1.0")
    peer.connect(accept_version="1.0")
    peer.send_frame("SUBSCRIBE", {"destination": "/queue/no-id", "ack": "client"})
    peer.send_frame("SEND", {"destination": "/queue/no-id"}, b"one")
    message = peer.expect("MESSAGE")
    assert "subscription" not in message.headers
    peer.send_frame("ACK", {"message-id": message.headers["message-id"], "receipt": "a"})
    peer.expect("RECEIPT")
    peer.send_frame("UNSUBSCRIBE", {"destination": "/queue/no-id", "receipt": "u"})
    peer.expect("RECEIPT")
    peer.send_frame("SEND", {"destination": "/queue/no-id", "receipt": "s"}, b"two")
    peer.expect("RECEIPT")
    assert broker.queue_depth("/queue/no-id") == 1  # nobody subscribed any more


def test_disconnect_gets_its_receipt_then_a_close(url: str, raw: Raw) -> None:
    peer = raw(url)
    peer.connect()
    peer.send_frame("DISCONNECT", {"receipt": "bye"})
    assert peer.expect("RECEIPT").headers["receipt-id"] == "bye"
    assert peer.closed()


def test_stop_is_quick_with_websockets_16(monkeypatch: pytest.MonkeyPatch) -> None:
    """websockets 16 (the last for Python 3.10) has ``Server.shutdown()`` without the close
    code. Passing it one killed the shutdown thread: every stop() then waited its whole
    timeout and left the accept thread running (the "hang" of the suite on Python 3.10)."""
    from websockets.sync.server import Server

    original = Server.shutdown

    def shutdown_of_websockets_16(self: Server) -> None:
        original(self)

    monkeypatch.setattr(Server, "shutdown", shutdown_of_websockets_16)
    broker = Broker().start()
    with stompws.Client(broker.ws_url, heartbeats=(0, 0)) as client:
        assert client.is_connected
    before = {t for t in threading.enumerate() if t.name.startswith("stompws-testbroker-ws")}
    started = time.monotonic()
    broker.stop(timeout=5.0)
    assert time.monotonic() - started < 2.0, "stop() waited for a shutdown that never came"
    assert not [t.name for t in before if t.is_alive()]
