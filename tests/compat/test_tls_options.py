"""set_ssl as stomp.py users call it: the host name is always checked, and no plaintext
loopback attempt goes ahead of a TLS host."""

from __future__ import annotations

import socket
import ssl

import pytest

import stompws.compat as compat
from stompws.compat.tls import SslParams


@pytest.mark.parametrize(
    "version",
    [ssl.PROTOCOL_TLS_CLIENT, ssl.PROTOCOL_TLS, ssl.PROTOCOL_TLSv1_2],
    ids=["TLS_CLIENT", "TLS", "TLSv1_2"],
)
def test_verification_always_checks_the_host_name(version: int) -> None:
    context = SslParams(ssl_version=version).context()
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname is True


def test_an_old_protocol_constant_becomes_a_minimum_version() -> None:
    context = SslParams(ssl_version=ssl.PROTOCOL_TLSv1_2).context()
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2


def test_verify_false_turns_both_checks_off() -> None:
    context = SslParams(ssl_version=ssl.PROTOCOL_TLS, verify=False).context()
    assert context.verify_mode is ssl.CERT_NONE and context.check_hostname is False


def test_no_plaintext_loopback_attempt_for_a_tls_host() -> None:
    own = socket.gethostname()
    connection = compat.Connection([(own, 61614)])
    connection.set_ssl(for_hosts=[(own, 61614)])
    urls = connection._urls()
    assert urls == [f"stomp+ssl://{own}:61614"], urls


def test_the_loopback_attempt_stays_for_a_plain_host() -> None:
    own = socket.gethostname()
    connection = compat.Connection([(own, 61613)])
    assert connection._urls() == ["stomp://127.0.0.1:61613", f"stomp://{own}:61613"]
