"""Fixtures for the security tests: test certificates, the embedded broker, TLS in front of it.

The embedded broker has no TLS listener of its own; as in ``examples/tls.py`` (whose
``TlsTerminator`` is reused here, not copied) a small asyncio TLS terminator in front of its
TCP and WebSocket ports plays the part stunnel or a load balancer plays in front of a real
broker. Each terminator gets its own ``ssl.SSLContext``, so a test chooses the server
certificate and whether a client certificate is required.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from stompws.testing import Broker

from ..support.ci import need
from ..support.embedded import package_broker
from .certs import Certificates, KeyPair, have_openssl, make_certificates

ROOT = Path(__file__).resolve().parents[2]
LOGIN = "alice"
# Random per run, so that finding it anywhere can only mean it leaked from this run.
PASSCODE = f"pw-{os.urandom(8).hex()}"


def _load_example_tls() -> ModuleType:
    spec = importlib.util.spec_from_file_location("example_tls_support", ROOT / "examples/tls.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_example_tls = _load_example_tls()


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    if not have_openssl():
        need("the openssl command is needed to make test certificates")
    return make_certificates(tmp_path_factory.mktemp("certs"))


broker = package_broker("broker", users={LOGIN: PASSCODE})


def server_context(pair: KeyPair, client_ca: Path | None = None) -> ssl.SSLContext:
    """A server-side context; with ``client_ca``, a client certificate it signed is required."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pair.cert, pair.key)
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=str(client_ca))
    return context


TlsFront = Callable[..., tuple[str, str]]


@pytest.fixture
def tls_front(broker: Broker) -> Iterator[TlsFront]:
    """``tls_front(pair, client_ca=None) -> (stomp+ssl URL, wss URL)`` in front of ``broker``."""
    with contextlib.ExitStack() as stack:

        def front(pair: KeyPair, client_ca: Path | None = None) -> tuple[str, str]:
            context = server_context(pair, client_ca)
            assert broker.tcp_port is not None and broker.ws_port is not None
            tcp = stack.enter_context(_example_tls.TlsTerminator(broker.tcp_port, context))
            ws = stack.enter_context(_example_tls.TlsTerminator(broker.ws_port, context))
            return f"stomp+ssl://127.0.0.1:{tcp.port}", f"wss://127.0.0.1:{ws.port}/ws"

        yield front


def require_port(host: str, port: int, what: str) -> None:
    """Skip when nothing listens on ``host:port``; in CI fail instead (``need``)."""
    try:
        with socket.create_connection((host, port), timeout=2.0):
            return
    except OSError as error:
        message = (
            f"{what} is not reachable at {host}:{port} ({error}); "
            "start the brokers with scripts/brokers/up.sh"
        )
    need(message)
