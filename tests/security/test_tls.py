"""TLS for wss:// and stomp+ssl://: verification is on by default and says why it refuses.

Against the embedded broker behind a TLS terminator (certificates made by the tests), and
against RabbitMQ's Web STOMP TLS listener set up by scripts/brokers/rabbitmq.sh (its CA in
.brokers/tls/ca.pem, made by scripts/brokers/tls.sh).
"""

from __future__ import annotations

import os
import ssl
import uuid
from pathlib import Path
from typing import Any

import pytest

import stompws

from ..support import brokers as real
from ..support.ci import need
from .certs import Certificates
from .conftest import LOGIN, PASSCODE, ROOT, TlsFront, require_port

WAIT = 10.0
SCHEMES = ["stomp+ssl", "wss"]


def _pick(urls: tuple[str, str], scheme: str) -> str:
    return urls[0] if scheme == "stomp+ssl" else urls[1]


def _round_trip(url: str, context: ssl.SSLContext | None, **options: Any) -> str:
    """Connect, send a message to ourselves and receive it; return the negotiated version."""
    queue = f"/queue/tls-{uuid.uuid4().hex[:8]}"
    with stompws.Client(
        url, heartbeats=(0, 0), ssl_context=context, connect_timeout=WAIT, **options
    ) as client:
        inbox = client.subscribe(queue, receipt=True)
        client.send(queue, "over TLS", receipt=True).wait(WAIT)  # type: ignore[union-attr]
        assert inbox.get(timeout=WAIT).text == "over TLS"
        assert client.version is not None
        return client.version


def _refused(url: str, context: ssl.SSLContext | None) -> stompws.ConnectError:
    client = stompws.Client(
        url, login=LOGIN, passcode=PASSCODE, heartbeats=(0, 0), ssl_context=context
    )
    with pytest.raises(stompws.ConnectError) as caught:
        client.connect(timeout=WAIT)
    client.disconnect()
    assert not isinstance(caught.value, stompws.ConnectTimeout), caught.value
    return caught.value


@pytest.mark.parametrize("scheme", SCHEMES)
def test_unknown_ca_is_refused_by_default(
    certificates: Certificates, tls_front: TlsFront, scheme: str
) -> None:
    # The server's certificate is valid but signed by a CA the system does not trust: the
    # default (no ssl_context) verifies and refuses, naming the reason.
    url = _pick(tls_front(certificates.server), scheme)
    error = _refused(url, None)
    assert "TLS certificate of 127.0.0.1 refused" in str(error)
    assert "unable to get local issuer certificate" in str(error)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_self_signed_server_is_refused(
    certificates: Certificates, tls_front: TlsFront, scheme: str
) -> None:
    url = _pick(tls_front(certificates.self_signed), scheme)
    error = _refused(url, None)
    assert "TLS certificate of 127.0.0.1 refused: self-signed certificate" in str(error)
    # Trusting our test CA does not make a certificate it did not sign acceptable.
    trusting = ssl.create_default_context(cafile=str(certificates.ca))
    assert "self-signed certificate" in str(_refused(url, trusting))


@pytest.mark.parametrize("scheme", SCHEMES)
def test_host_name_mismatch_is_refused(
    certificates: Certificates, tls_front: TlsFront, scheme: str
) -> None:
    # Signed by the trusted CA, but for other.invalid, not for the 127.0.0.1 we dialled.
    url = _pick(tls_front(certificates.wrong_host), scheme)
    trusting = ssl.create_default_context(cafile=str(certificates.ca))
    error = _refused(url, trusting)
    assert "TLS certificate of 127.0.0.1 refused" in str(error)
    assert "mismatch" in str(error)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_custom_ca_through_ssl_context_is_accepted(
    certificates: Certificates, tls_front: TlsFront, scheme: str
) -> None:
    url = _pick(tls_front(certificates.server), scheme)
    trusting = ssl.create_default_context(cafile=str(certificates.ca))
    assert trusting.check_hostname and trusting.verify_mode is ssl.CERT_REQUIRED
    assert _round_trip(url, trusting, login=LOGIN, passcode=PASSCODE) == "1.2"


@pytest.mark.parametrize("scheme", SCHEMES)
def test_mutual_tls_with_a_client_certificate(
    certificates: Certificates, tls_front: TlsFront, scheme: str
) -> None:
    url = _pick(tls_front(certificates.server, client_ca=certificates.ca), scheme)
    with_cert = ssl.create_default_context(cafile=str(certificates.ca))
    with_cert.load_cert_chain(certificates.client.cert, certificates.client.key)
    assert _round_trip(url, with_cert, login=LOGIN, passcode=PASSCODE) == "1.2"

    # Without a certificate, or with one from a CA the server does not trust, the server
    # ends the handshake. With TLS 1.3 the client learns it only at its first read, which
    # must still fail connect() with a ConnectError, not hang or pass.
    without = ssl.create_default_context(cafile=str(certificates.ca))
    stranger = ssl.create_default_context(cafile=str(certificates.ca))
    stranger.load_cert_chain(certificates.other_client.cert, certificates.other_client.key)
    for context in (without, stranger):
        client = stompws.Client(
            url, login=LOGIN, passcode=PASSCODE, heartbeats=(0, 0), ssl_context=context
        )
        with pytest.raises(stompws.ConnectError):
            client.connect(timeout=WAIT)
        client.disconnect()
        assert not client.is_connected


def test_plain_client_against_tls_port_fails_cleanly(
    certificates: Certificates, tls_front: TlsFront
) -> None:
    # A ws:// URL aimed at a TLS port: the handshake fails with ConnectError, within the
    # connect timeout, instead of hanging on an answer that never comes.
    wss = tls_front(certificates.server)[1]
    client = stompws.Client(wss.replace("wss://", "ws://"), heartbeats=(0, 0))
    with pytest.raises(stompws.ConnectError):
        client.connect(timeout=3.0)
    client.disconnect()


# -- RabbitMQ's Web STOMP TLS listener (scripts/brokers/rabbitmq.sh) ------------------------

RABBITMQ_WSS = real.RABBITMQ_WSS_URL
RABBITMQ_CA = Path(os.environ.get("STOMPWS_BROKER_DIR", str(ROOT / ".brokers"))) / "tls" / "ca.pem"


@pytest.fixture
def rabbitmq_ca() -> Path:
    require_port(real.HOST, real.RABBITMQ_WSS_PORT, "RabbitMQ Web STOMP over TLS")
    if not RABBITMQ_CA.exists():
        need(f"{RABBITMQ_CA} is missing; scripts/brokers/up.sh (tls.sh) makes it")
    return RABBITMQ_CA


@pytest.mark.integration
def test_rabbitmq_wss_refused_without_its_ca(rabbitmq_ca: Path) -> None:
    client = stompws.Client(RABBITMQ_WSS, login="guest", passcode="guest", heartbeats=(0, 0))
    with pytest.raises(stompws.ConnectError, match=r"TLS certificate of 127\.0\.0\.1 refused"):
        client.connect(timeout=WAIT)
    client.disconnect()


@pytest.mark.integration
@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_rabbitmq_wss_with_its_ca(rabbitmq_ca: Path, version: str) -> None:
    context = ssl.create_default_context(cafile=str(rabbitmq_ca))
    negotiated = _round_trip(
        RABBITMQ_WSS, context, login="guest", passcode="guest", versions=(version,)
    )
    assert negotiated == version


@pytest.mark.integration
def test_rabbitmq_wss_refuses_a_wrong_passcode_over_tls(rabbitmq_ca: Path) -> None:
    context = ssl.create_default_context(cafile=str(rabbitmq_ca))
    client = stompws.Client(
        RABBITMQ_WSS, login="guest", passcode=PASSCODE, heartbeats=(0, 0), ssl_context=context
    )
    with pytest.raises(stompws.BrokerError) as caught:
        client.connect(timeout=WAIT)
    client.disconnect(timeout=1.0)
    assert PASSCODE not in str(caught.value) and PASSCODE not in repr(caught.value)
