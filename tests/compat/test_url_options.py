"""STOMP options in the URL's query: parse_url, and the Client settings they give.

No broker: a socket that records what the client sends stands in for one.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

import stompws
from stompws.transport import parse_url


class Capture:
    """Accepts one connection, keeps the bytes that come until ``end``, then closes."""

    def __init__(self, end: bytes) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self.data = b""
        self._end = end
        self._thread = threading.Thread(target=self._serve, name="capture", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        self._server.settimeout(10.0)
        try:
            peer, _ = self._server.accept()
        except OSError:
            return
        with peer:
            peer.settimeout(10.0)
            while self._end not in self.data:
                chunk = peer.recv(65536)
                if not chunk:
                    break
                self.data += chunk

    def close(self) -> bytes:
        self._thread.join(10.0)
        self._server.close()
        return self.data


@pytest.fixture
def stomp_capture() -> Iterator[Capture]:
    capture = Capture(b"\x00")
    yield capture
    capture.close()


@pytest.fixture
def http_capture() -> Iterator[Capture]:
    capture = Capture(b"\r\n\r\n")
    yield capture
    capture.close()


# -- parse_url -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "heartbeats"),
    [
        ("heartbeat=5000", (5000, 5000)),
        ("heart-beat=1000,2000", (1000, 2000)),
        ("heartbeats=0", (0, 0)),
        ("HeartBeat=10%2C20", (10, 20)),
        ("", None),
    ],
)
def test_heartbeat_option(query: str, heartbeats: tuple[int, int] | None) -> None:
    endpoint = parse_url(f"ws://h:1/ws?{query}" if query else "ws://h:1/ws")
    assert endpoint.heartbeats == heartbeats
    assert endpoint.path == "/ws"


@pytest.mark.parametrize(
    ("query", "vhost"),
    [("vhost=%2F", "/"), ("vhost=/", "/"), ("host=my-vhost", "my-vhost"), ("vhost=a+b", "a b")],
)
def test_vhost_option(query: str, vhost: str) -> None:
    assert parse_url(f"stomp://h:1?{query}").vhost == vhost


@pytest.mark.parametrize(
    ("query", "versions"),
    [
        ("version=1.2", ("1.2",)),
        ("accept-version=1.1,1.2", ("1.1", "1.2")),
        ("versions=1.0", ("1.0",)),
    ],
)
def test_version_option(query: str, versions: tuple[str, ...]) -> None:
    assert parse_url(f"ws://h:1/?{query}").versions == versions


def test_other_query_parameters_stay_untouched() -> None:
    url = "wss://user:pa%40ss@h:443/stomp?api_key=a%2Bb%3D&heartbeat=5000&x=1&x=2&flag&vhost=v"
    endpoint = parse_url(url)
    assert endpoint.path == "/stomp?api_key=a%2Bb%3D&x=1&x=2&flag"
    assert endpoint.request_url == "wss://h:443/stomp?api_key=a%2Bb%3D&x=1&x=2&flag"
    assert endpoint.url == "wss://h:443/stomp"  # shown and logged: no API key
    assert (endpoint.heartbeats, endpoint.vhost) == ((5000, 5000), "v")
    assert (endpoint.login, endpoint.passcode) == ("user", "pa@ss")
    assert "pa@ss" not in repr(endpoint)


def test_a_server_parameter_named_like_an_option_passes_when_encoded() -> None:
    endpoint = parse_url("ws://h:1/ws?%76ersion=3")
    assert endpoint.versions is None
    assert endpoint.path == "/ws?%76ersion=3"


def test_no_query_and_no_options_keep_the_old_shape() -> None:
    endpoint = parse_url("stomp://h")
    assert (endpoint.port, endpoint.heartbeats, endpoint.vhost, endpoint.versions) == (
        61613,
        None,
        None,
        None,
    )


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("ws://h/?heartbeat=fast", "heartbeat must be milliseconds"),
        ("ws://h/?heartbeat=1,2,3", "heartbeat must be milliseconds"),
        ("ws://h/?heartbeat=-1", "heartbeat must be milliseconds"),
        ("ws://h/?heartbeat=", "needs a value"),
        ("ws://h/?version=2.0", "unknown STOMP version '2.0'"),
        ("ws://h/?vhost=a&vhost=b", "given twice"),
        ("ws://h/?vhost=a&host=b", "mean the same"),
        ("stomp://h?api_key=1", "unknown query option 'api_key'"),
    ],
)
def test_bad_options_are_refused(url: str, complaint: str) -> None:
    with pytest.raises(stompws.UsageError, match=complaint):
        parse_url(url)


def test_errors_never_show_the_passcode() -> None:
    with pytest.raises(stompws.UsageError) as caught:
        parse_url("ws://u:secret@h/?heartbeat=x")
    assert "secret" not in str(caught.value)


# -- the Client settings they give ---------------------------------------------------------


def test_url_options_configure_the_client() -> None:
    client = stompws.Client("ws://h:1/ws?heartbeat=2500&vhost=/&version=1.1,1.2&key=k")
    assert client._heartbeats == (2500, 2500)
    assert client._host == "/"
    assert client._versions == ("1.1", "1.2")
    assert client.url == "ws://h:1/ws"  # the key goes to the server, never into logs


def test_explicit_arguments_win_over_url_options() -> None:
    client = stompws.Client(
        "ws://h:1/ws?heartbeat=2500&vhost=/&version=1.1",
        heartbeats=(0, 0),
        host="other",
        versions=("1.2",),
    )
    assert (client._heartbeats, client._host, client._versions) == ((0, 0), "other", ("1.2",))


def test_defaults_without_options() -> None:
    client = stompws.Client("ws://h:1/ws")
    assert (client._heartbeats, client._host, client._versions) == (
        (10_000, 10_000),
        None,
        ("1.0", "1.1", "1.2"),
    )


def test_fail_over_urls_must_agree_on_options() -> None:
    client = stompws.Client(["stomp://a?heartbeat=1000", "stomp://b", "stomp://c?heartbeat=1000"])
    assert client._heartbeats == (1000, 1000)
    with pytest.raises(stompws.UsageError, match="different heartbeats"):
        stompws.Client(["stomp://a?heartbeat=1000", "stomp://b?heartbeat=2000"])
    # An argument settles it: the URLs' options are not used then.
    stompws.Client(["stomp://a?vhost=x", "stomp://b?vhost=y"], host="z")


def test_url_options_reach_the_connect_frame(stomp_capture: Capture) -> None:
    url = f"stomp://guest:guest@127.0.0.1:{stomp_capture.port}?heart-beat=1000,0&vhost=%2F&version=1.2"
    client = stompws.Client(url, connect_timeout=2.0)
    with pytest.raises(stompws.ConnectError):
        client.connect()
    client.disconnect()
    head = stomp_capture.close().split(b"\n\n")[0].decode().split("\n")
    assert head[0] == "CONNECT"
    assert "accept-version:1.2" in head
    assert "heart-beat:1000,0" in head
    assert "host:/" in head
    assert "login:guest" in head


def test_other_parameters_reach_the_websocket_request(http_capture: Capture) -> None:
    url = f"ws://127.0.0.1:{http_capture.port}/ws?api_key=s%2Fk&heartbeat=0&lang=en"
    client = stompws.Client(url, connect_timeout=2.0)
    with pytest.raises(stompws.ConnectError):
        client.connect()
    client.disconnect()
    request_line = http_capture.close().split(b"\r\n")[0].decode()
    assert request_line == "GET /ws?api_key=s%2Fk&lang=en HTTP/1.1"
