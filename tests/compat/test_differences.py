"""stompws.compat where it differs from stomp.py on purpose, and its own mapping of
arguments, against the embedded broker (no real broker needed)."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

import stompws
import stompws.compat as compat
from stompws.testing import Broker

from ..fakes import Peer, fake_broker
from ..faults.proxy import FaultProxy
from .support import IMPLEMENTATIONS, Recorder, new_queue, wait_for

USERS = {"guest": "guest"}


@pytest.fixture(scope="module")
def broker() -> Iterator[Broker]:
    with Broker(users=USERS) as running:
        yield running


@pytest.fixture
def made() -> Iterator[list[Any]]:
    """Connections to disconnect at teardown, before the leaked-thread check."""
    connections: list[Any] = []
    yield connections
    for connection in connections:
        connection.disconnect()


def _tcp(broker: Broker, made: list[Any], cls: Any = compat.Connection12, **options: Any) -> Any:
    assert broker.tcp_port is not None
    connection = cls([("127.0.0.1", broker.tcp_port)], **options)
    made.append(connection)
    return connection


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # nothing listens on it once the probe is closed


class Raising(compat.ConnectionListener):
    def on_message(self, frame: compat.Frame) -> None:
        raise RuntimeError("a listener bug")


class Ordered(compat.ConnectionListener):
    def __init__(self) -> None:
        self.events: list[str] = []

    def on_disconnecting(self) -> None:
        self.events.append("on_disconnecting")

    def on_send(self, frame: compat.Frame) -> None:
        self.events.append(f"on_send {frame.cmd}")

    def on_disconnected(self) -> None:
        self.events.append("on_disconnected")


def test_compat_does_not_import_stomp_py() -> None:
    code = "import sys, stompws.compat; print('stomp' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "False", result.stderr


def test_exceptions_are_also_the_native_ones() -> None:
    assert issubclass(compat.NotConnectedException, stompws.NotConnected)
    assert issubclass(compat.ConnectionClosedException, stompws.ConnectionClosed)
    assert issubclass(compat.ConnectFailedException, stompws.ConnectError)
    for cls in (compat.NotConnectedException, compat.ConnectFailedException):
        assert issubclass(cls, compat.StompException)
        assert issubclass(cls, stompws.StompError)
    assert compat.Connection is compat.Connection11
    assert compat.WSStompConnection is compat.WSConnection


def test_on_disconnecting_comes_before_the_disconnect_frame(
    broker: Broker, made: list[Any]
) -> None:
    listener = Ordered()
    connection = _tcp(broker, made)
    connection.set_listener("ordered", listener)
    connection.connect("guest", "guest", wait=True)
    connection.disconnect()
    assert listener.events[-3:] == ["on_disconnecting", "on_send DISCONNECT", "on_disconnected"]


def test_a_listener_that_raises_keeps_the_connection_and_the_others(
    broker: Broker, made: list[Any]
) -> None:
    queue = new_queue()
    recorder = Recorder()
    connection = _tcp(broker, made)
    connection.set_listener("a-raises", Raising())
    connection.set_listener("b-records", recorder)
    connection.connect("guest", "guest", wait=True)
    connection.subscribe(queue, id="s1")
    connection.send(queue, "one")
    connection.send(queue, "two")
    assert [frame.body for frame in recorder.wait_for("message", 2)] == ["one", "two"]
    assert connection.is_connected()


def test_listener_waits_are_bounded() -> None:
    waiting = compat.WaitingListener("never")
    with pytest.raises(TimeoutError):
        waiting.wait_on_receipt(timeout=0.05)
    with pytest.raises(TimeoutError):
        waiting.wait_on_disconnected(timeout=0.05)
    tester = compat.TestListener()
    with pytest.raises(TimeoutError):
        tester.wait_for_message(timeout=0.05)
    with pytest.raises(TimeoutError):
        tester.wait_for_heartbeat(timeout=0.05)


def test_disconnect_never_waits_longer_than_its_timeout(broker: Broker, made: list[Any]) -> None:
    connection = _tcp(broker, made, disconnect_timeout=0.3)
    connection.connect("guest", "guest", wait=True)
    broker.go_silent()  # the RECEIPT for DISCONNECT never comes
    try:
        started = time.monotonic()
        connection.disconnect(receipt="bye")
        assert time.monotonic() - started < 3.0
        assert not connection.is_connected()
    finally:
        broker.reset_faults()


def test_an_unreachable_host_fails_after_the_attempts(made: list[Any]) -> None:
    recorder = Recorder()
    connection = compat.Connection(
        [("127.0.0.1", _closed_port())],
        reconnect_attempts_max=2,
        reconnect_sleep_initial=0.01,
    )
    made.append(connection)
    connection.set_listener("recorder", recorder)
    with pytest.raises(compat.ConnectFailedException) as caught:
        connection.connect("guest", "guest", wait=True)
    assert isinstance(caught.value, stompws.ConnectError)
    assert recorder.events == []  # like stomp.py: no socket, no callbacks


def test_refused_credentials_without_wait_reach_on_error(broker: Broker, made: list[Any]) -> None:
    recorder = Recorder()
    connection = _tcp(broker, made)
    connection.set_listener("recorder", recorder)
    connection.connect("guest", "wrong", wait=False)
    (error,) = recorder.wait_for("error")
    assert error.cmd == "ERROR"
    assert not connection.is_connected()


def test_connect_again_after_disconnect(broker: Broker, made: list[Any]) -> None:
    recorder = Recorder()
    connection = _tcp(broker, made)
    connection.set_listener("recorder", recorder)
    for _ in range(2):
        connection.connect("guest", "guest", wait=True)
        assert connection.is_connected()
        connection.disconnect()
        assert not connection.is_connected()
    assert recorder.names().count("connected") == 2
    assert recorder.names().count("disconnected") == 2


def test_auto_reconnect_subscribes_again(broker: Broker, made: list[Any]) -> None:
    queue = new_queue()
    recorder = Recorder()
    connection = _tcp(broker, made, auto_reconnect=True, reconnect_sleep_initial=0.05)
    connection.set_listener("recorder", recorder)
    connection.connect("guest", "guest", wait=True)
    connection.subscribe(queue, id="s1")
    broker.drop_connections()
    recorder.wait_for("connected", 2)
    wait_for(connection.is_connected, "reconnected")
    connection.send(queue, "after")
    (frame,) = recorder.wait_for("message")
    assert frame.body == "after"
    assert recorder.names().count("disconnected") == 1


def test_stomp_1_0_ack_by_message_id_and_unsubscribe_by_destination(
    broker: Broker, made: list[Any]
) -> None:
    queue, other = new_queue(), new_queue()
    recorder = Recorder()
    connection = _tcp(broker, made, cls=compat.Connection10)
    connection.set_listener("recorder", recorder)
    connection.connect("guest", "guest", wait=True)
    assert connection.client is not None and connection.client.version == "1.0"
    connection.subscribe(queue, ack="client")
    connection.send(queue, "one")
    (frame,) = recorder.wait_for("message")
    connection.ack(frame.headers["message-id"])
    connection.unsubscribe(destination=queue)
    connection.subscribe(other, id="s2")
    connection.send(queue, "not for us")
    connection.send(other, "end")
    assert [f.body for f in recorder.wait_for_body("end")] == ["one", "end"]


def test_websocket_connection_with_query_options(broker: Broker, made: list[Any]) -> None:
    # A URL entry in host_and_ports carries stompws's query options.
    recorder = Recorder()
    connection = compat.WSConnection([f"{broker.ws_url}?heartbeat=0&version=1.2"])
    made.append(connection)
    connection.set_listener("recorder", recorder)
    connection.connect("guest", "guest", wait=True)
    (connected,) = recorder.of("connected")
    assert connected.headers["version"] == "1.2"
    assert connected.headers.get("heart-beat", "0,0") == "0,0"


def test_extra_headers_reach_the_wire_on_every_command(broker: Broker, made: list[Any]) -> None:
    """stomp.py passes extra headers on every frame; so does compat (they were refused)."""
    recorder = Recorder()
    sent: dict[str, str | None] = {}

    class Sent:
        def on_send(self, frame: Any) -> None:
            sent.setdefault(frame.cmd, frame.headers.get("x-extra"))  # the first of each

    connection = _tcp(broker, made)
    connection.set_listener("recorder", recorder)
    connection.set_listener("sent", Sent())
    connection.connect("guest", "guest", wait=True)
    connection.subscribe("/queue/extra", id="s1", ack="client-individual")
    tx = connection.begin(headers={"x-extra": "begin"})
    connection.commit(tx, headers={"x-extra": "commit"})
    tx = connection.begin()
    connection.abort(tx, **{"x-extra": "abort"})
    connection.send("/queue/extra", "m")
    (message,) = recorder.wait_for("message")
    connection.nack(message.headers["ack"], **{"x-extra": "nack"})
    connection.unsubscribe("s1", headers={"x-extra": "unsubscribe"})
    connection.disconnect(headers={"x-extra": "disconnect"})
    for command in ("BEGIN", "COMMIT", "ABORT", "NACK", "UNSUBSCRIBE", "DISCONNECT"):
        assert sent.get(command) == command.lower(), (command, sent)


def test_frame_str_hides_the_passcode() -> None:
    frame = compat.Frame("CONNECT", {"login": "guest", "passcode": "secret"}, "")
    assert "secret" not in str(frame)
    assert frame.original_headers == {"login": "guest", "passcode": "secret"}


def test_host_ordering_and_urls() -> None:
    connection = compat.Connection([("broker.example", 61613), ("localhost", 61613)])
    assert connection.host_and_ports == [("localhost", 61613), ("broker.example", 61613)]
    # As in stomp.py: this machine's own name first, with 127.0.0.1 tried before it.
    own = socket.gethostname()
    connection = compat.Connection([("broker.example", 1), (own, 2)])
    assert connection.host_and_ports == [("127.0.0.1", 2), (own, 2), ("broker.example", 1)]
    connection = compat.Connection([("b", 1), (own, 2)], False, False)
    assert connection.host_and_ports == [("b", 1), (own, 2)]
    ws = compat.WSConnection([("h1", 15674), ("h2", 15673)], ws_path="ws", prefer_localhost=False)
    ws.set_ssl(for_hosts=[("h2", 15673)], verify=False)
    assert ws._urls() == ["ws://h1:15674/ws", "wss://h2:15673/ws"]
    assert ws.get_ssl(("h2", 15673))["verify"] is False  # type: ignore[index]
    assert ws.get_ssl(("h1", 15674)) is None


def test_set_ssl_becomes_an_ssl_context() -> None:
    connection = compat.Connection12([("h", 61614)])
    connection.set_ssl(for_hosts=[("h", 61614)])
    context = connection._ssl_context()
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    connection.set_ssl(for_hosts=[("h", 61614)], verify=False)
    relaxed = connection._ssl_context()
    assert relaxed is not None and relaxed.verify_mode is ssl.CERT_NONE
    connection.set_ssl(for_hosts=[("h", 61614)], cert_validator=lambda cert, host: (True, ""))
    with pytest.raises(stompws.UsageError):
        connection._ssl_context()


@pytest.mark.parametrize("implementation", ["stomp.py", "compat"])
def test_reconnect_from_on_disconnected(
    broker: Broker, made: list[Any], implementation: str
) -> None:
    # The stomp.py idiom for surviving a lost connection: on_disconnected connects and
    # subscribes again. Both implementations, against the embedded broker.
    stomp = IMPLEMENTATIONS[implementation].module
    queue = new_queue()
    recorder = Recorder()
    assert broker.tcp_port is not None
    connection = stomp.Connection12([("127.0.0.1", broker.tcp_port)], heartbeats=(0, 0))
    made.append(connection)

    class Reconnector:
        def on_disconnected(self) -> None:
            if recorder.names().count("disconnected") == 1:
                connection.connect("guest", "guest", wait=True)
                connection.subscribe(queue, id="s1")

    connection.set_listener("a-recorder", recorder)
    connection.set_listener("b-reconnector", Reconnector())
    connection.connect("guest", "guest", wait=True)
    connection.subscribe(queue, id="s1")
    wait_for(lambda: len(broker.connections) >= 1, "connected")
    broker.drop_connections()
    recorder.wait_for("connected", 2)
    wait_for(connection.is_connected, "reconnected")
    connection.send(queue, "after")
    assert [frame.body for frame in recorder.wait_for_body("after")] == ["after"]


def test_bind_host_port_over_websocket_too(broker: Broker, made: list[Any]) -> None:
    """stomp.py 9's WSConnection ignores ``bind_host_port``; stompws.compat binds it."""
    assert broker.ws_port is not None
    with FaultProxy("127.0.0.1", broker.ws_port) as proxy:
        for _ in range(5):  # a port found free may be taken before the client binds it
            port = _closed_port()
            connection = compat.WSConnection(
                [("127.0.0.1", proxy.port)], ws_path="/ws", bind_host_port=("127.0.0.1", port)
            )
            made.append(connection)
            try:
                connection.connect("guest", "guest", wait=True)
            except compat.ConnectFailedException:
                continue
            assert proxy.wait_for_accepted(proxy.accepted).client_address == ("127.0.0.1", port)
            return
        pytest.fail("five free ports were all taken before the client could bind one")


def test_a_refused_connect_closed_without_its_error_is_tried_again_and_each_end_heard(
    made: list[Any],
) -> None:
    """ActiveMQ now and then closes a CONNECT with a wrong passcode without sending its
    ERROR (seen in a fresh clone); the next attempt gets the ERROR. As stomp.py does after a
    failed connection, compat tries again; the listeners hear each attempt's end once."""
    attempts: list[int] = []

    def closes_then_refuses(peer: Peer) -> None:
        attempts.append(1)
        connect = peer.frame()
        assert connect is not None and connect.command == "CONNECT", connect
        if len(attempts) > 1:
            peer.send_frame("ERROR", {"message": "User name [guest] or password is invalid."})

    with fake_broker(closes_then_refuses) as broker:
        recorder = Recorder()
        connection = compat.Connection12(
            [("127.0.0.1", broker.port)], reconnect_attempts_max=3, reconnect_sleep_initial=0.01
        )
        made.append(connection)
        connection.set_listener("recorder", recorder)
        connection.connect("guest", "wrong", wait=False)
        recorder.wait_for("error")
        recorder.wait_for("disconnected", 2)
        names = recorder.names()
    assert names == ["connecting", "disconnected", "connecting", "error", "disconnected"], names
    assert len(attempts) == 2
