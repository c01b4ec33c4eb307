"""The embedded broker's own TLS listeners: ``Broker(ssl_context=...)``, wss:// and
stomp+ssl:// without a terminator in front."""

from __future__ import annotations

import socket
import ssl
import time

import pytest

import stompws
from stompws.testing import Broker

from .certs import Certificates
from .conftest import server_context

WAIT = 10.0


def _client_context(certificates: Certificates, *, with_cert: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certificates.ca))
    if with_cert:
        context.load_cert_chain(str(certificates.client.cert), str(certificates.client.key))
    return context


@pytest.mark.parametrize("kind", ["ws", "tcp"])
def test_messages_cross_over_the_brokers_tls(certificates: Certificates, kind: str) -> None:
    with Broker(ssl_context=server_context(certificates.server)) as broker:
        url = broker.wss_url if kind == "ws" else broker.tcps_url
        assert url == (broker.ws_url if kind == "ws" else broker.tcp_url)
        assert url.startswith("wss://" if kind == "ws" else "stomp+ssl://")
        context = _client_context(certificates)
        with stompws.Client(url, ssl_context=context) as client:
            subscription = client.subscribe("/queue/tls", receipt=True)
            client.send("/queue/tls", "secret" * 10_000, receipt=True).wait(WAIT)  # type: ignore[union-attr]
            assert subscription.get(timeout=WAIT).text == "secret" * 10_000
            client.send("/queue/tls", "later")
            assert subscription.get(timeout=WAIT).text == "later"
            assert client.is_connected


@pytest.mark.parametrize("kind", ["ws", "tcp"])
def test_a_client_that_does_not_trust_the_certificate_is_refused(
    certificates: Certificates, kind: str
) -> None:
    with Broker(ssl_context=server_context(certificates.self_signed)) as broker:
        url = broker.wss_url if kind == "ws" else broker.tcps_url
        client = stompws.Client(url, ssl_context=_client_context(certificates))
        with pytest.raises(stompws.ConnectError, match="certificate"):
            client.connect()
        client.disconnect(timeout=1.0)
        # The broker is not hurt by it: its side of the failed handshake ends (on its own
        # thread, a moment after the client gave up; a fresh-clone run once looked too
        # early), and a client that trusts the certificate gets in.
        broker.wait_for_connections(0, timeout=WAIT, sessions=False)
        assert broker.connections == []
        trusting = ssl.create_default_context()
        trusting.load_verify_locations(cadata=certificates.self_signed.cert.read_text())
        with stompws.Client(url, ssl_context=trusting) as good:
            assert good.is_connected


@pytest.mark.parametrize("kind", ["ws", "tcp"])
def test_mutual_tls(certificates: Certificates, kind: str) -> None:
    context = server_context(certificates.server, client_ca=certificates.ca)
    with Broker(ssl_context=context) as broker:
        url = broker.wss_url if kind == "ws" else broker.tcps_url
        refused = stompws.Client(url, ssl_context=_client_context(certificates))
        with pytest.raises(stompws.ConnectError):
            refused.connect()
        refused.disconnect(timeout=1.0)
        with stompws.Client(
            url, ssl_context=_client_context(certificates, with_cert=True)
        ) as client:
            client.send("/queue/mtls", "x", receipt=True).wait(WAIT)  # type: ignore[union-attr]


def test_a_peer_that_never_starts_tls_is_closed_after_connect_timeout(
    certificates: Certificates,
) -> None:
    with Broker(ssl_context=server_context(certificates.server), connect_timeout=0.5) as broker:
        assert broker.tcp_port is not None
        with socket.create_connection(("127.0.0.1", broker.tcp_port), timeout=WAIT) as silent:
            started = time.monotonic()
            assert silent.recv(1) == b"", "the broker should close a silent peer"
            assert time.monotonic() - started < 0.5 + 3.0  # connect_timeout, with margin
        # And a good client still gets in afterwards.
        with stompws.Client(broker.tcps_url, ssl_context=_client_context(certificates)) as client:
            assert client.is_connected


def test_tls_urls_need_a_tls_broker() -> None:
    with Broker() as broker:
        assert broker.ws_url.startswith("ws://")
        with pytest.raises(stompws.UsageError, match="does not speak TLS"):
            _ = broker.wss_url
        with pytest.raises(stompws.UsageError, match="does not speak TLS"):
            _ = broker.tcps_url
