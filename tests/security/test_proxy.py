"""http_proxy / https_proxy: ws:// and wss:// go through an HTTP CONNECT tunnel when the
environment names a proxy (and no_proxy does not exempt the host), against a small CONNECT
proxy on 127.0.0.1 that maps every name it is asked for to 127.0.0.1."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Callable, Iterator

import pytest

import stompws
from stompws.endpoint import parse_url
from stompws.proxy import proxy_for
from stompws.testing import Broker

from .certs import Certificates
from .conftest import LOGIN, PASSCODE, TlsFront

WAIT = 10.0


class ConnectProxy:
    """Answers CONNECT with ``status``; on 200, relays bytes both ways to 127.0.0.1."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.heads: list[list[str]] = []
        self._threads: list[threading.Thread] = []
        self._socks: list[socket.socket] = []
        self._start(self._accept)

    def _start(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name="test-proxy", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self.listener.accept()
                self._socks.append(conn)
                self._start(self._serve, conn)

    def _serve(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            conn.settimeout(WAIT)
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                head += chunk
            lines = head.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
            self.heads.append(lines)
            if self.status != 200:
                conn.sendall(f"HTTP/1.1 {self.status} No\r\nContent-Length: 0\r\n\r\n".encode())
                conn.shutdown(socket.SHUT_WR)
                return
            port = int(lines[0].split()[1].rpartition(":")[2])
            upstream = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
            self._socks.append(upstream)
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            self._start(self._pump, upstream, conn)
            self._pump(conn, upstream)

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            source.settimeout(None)
            while data := source.recv(65536):
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        with contextlib.suppress(OSError):  # wakes the accept (close alone does not)
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        for sock in self._socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in self._threads:
            thread.join(WAIT)
        assert not any(thread.is_alive() for thread in self._threads)


@pytest.fixture
def proxy() -> Iterator[ConnectProxy]:
    running = ConnectProxy()
    yield running
    running.close()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def _round_trip(url: str, **options: object) -> None:
    client = stompws.Client(
        url, login=LOGIN, passcode=PASSCODE, heartbeats=(0, 0), connect_timeout=WAIT, **options
    )
    try:
        client.connect(timeout=WAIT)
        subscription = client.subscribe("/queue/proxied")
        client.send("/queue/proxied", "through the tunnel")
        assert subscription.get(timeout=WAIT).text == "through the tunnel"
    finally:
        client.disconnect(timeout=WAIT)


def test_ws_goes_through_http_proxy(
    broker: Broker, proxy: ConnectProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("http_proxy", f"http://pu:p%40ss@127.0.0.1:{proxy.port}")
    monkeypatch.setenv("no_proxy", "nothing.invalid")
    # A name only the proxy can resolve: reaching the broker proves the tunnel was used.
    _round_trip(f"ws://broker.test:{broker.ws_port}/ws")
    assert len(proxy.heads) == 1
    head = proxy.heads[0]
    assert head[0] == f"CONNECT broker.test:{broker.ws_port} HTTP/1.1"
    assert "Proxy-Authorization: Basic cHU6cEBzcw==" in head  # pu:p@ss


def test_wss_goes_through_https_proxy_with_tls_end_to_end(
    certificates: Certificates,
    tls_front: TlsFront,
    proxy: ConnectProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, wss = tls_front(certificates.server)
    port = int(wss.rsplit(":", 1)[1].split("/")[0])
    monkeypatch.setenv("HTTPS_PROXY", f"127.0.0.1:{proxy.port}")
    monkeypatch.setenv("no_proxy", "nothing.invalid")
    trusting = ssl.create_default_context(cafile=str(certificates.ca))
    _round_trip(f"wss://localhost:{port}/ws", ssl_context=trusting)
    assert [head[0] for head in proxy.heads] == [f"CONNECT localhost:{port} HTTP/1.1"]


def test_no_proxy_and_loopback_go_direct(
    broker: Broker, proxy: ConnectProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{proxy.port}")
    _round_trip(f"ws://127.0.0.1:{broker.ws_port}/ws")  # no no_proxy: loopback is direct
    monkeypatch.setenv("no_proxy", ".example,127.0.0.1")
    _round_trip(f"ws://127.0.0.1:{broker.ws_port}/ws")
    assert proxy.heads == []


def test_a_proxy_that_refuses_is_a_connect_error(
    broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    refusing = ConnectProxy(status=407)
    try:
        monkeypatch.setenv("http_proxy", f"http://pu:hidden-pw@127.0.0.1:{refusing.port}")
        monkeypatch.setenv("no_proxy", "nothing.invalid")
        client = stompws.Client(f"ws://broker.test:{broker.ws_port}/ws", heartbeats=(0, 0))
        with pytest.raises(stompws.ConnectError) as caught:
            client.connect(timeout=WAIT)
        client.disconnect(timeout=WAIT)
    finally:
        refusing.close()
    message = str(caught.value)
    assert "HTTP 407" in message and f"127.0.0.1:{refusing.port}" in message, message
    assert "hidden-pw" not in message


@pytest.mark.parametrize(
    ("url", "environ", "expected"),
    [
        ("ws://b.test/ws", {"http_proxy": "http://p:3128"}, ("p", 3128)),
        ("ws://b.test/ws", {"HTTP_PROXY": "p:8080"}, ("p", 8080)),
        ("ws://b.test/ws", {"https_proxy": "http://p:3128"}, None),  # wss only
        ("wss://b.test/ws", {"https_proxy": "http://p:3128"}, ("p", 3128)),
        ("stomp://b.test", {"http_proxy": "http://p:3128"}, None),  # not HTTP at all
        ("ws://localhost/ws", {"http_proxy": "http://p"}, None),
        ("ws://localhost/ws", {"http_proxy": "http://p", "no_proxy": "x.test"}, ("p", 80)),
        ("ws://a.b.test/ws", {"http_proxy": "http://p", "no_proxy": ".B.test:80"}, None),
        ("ws://b.test/ws", {"http_proxy": "http://p", "no_proxy": "*"}, None),
        ("ws://notb.test/ws", {"http_proxy": "http://p", "no_proxy": "b.test"}, ("p", 80)),
    ],
)
def test_which_proxy_the_environment_names(
    url: str, environ: dict[str, str], expected: tuple[str, int] | None
) -> None:
    found = proxy_for(parse_url(url), environ)
    assert (None if found is None else (found.host, found.port)) == expected


def test_a_proxy_that_is_not_http_is_refused_not_bypassed() -> None:
    with pytest.raises(stompws.ConnectError, match="only HTTP CONNECT"):
        proxy_for(parse_url("ws://b.test/ws"), {"http_proxy": "socks5://p:1080"})
