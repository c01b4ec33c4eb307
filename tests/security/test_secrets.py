"""The passcode and the Authorization header never show: not in log records at DEBUG, not in
reprs, not in exception messages, not in PrintingListener output.

Each test runs a whole session (connect, subscribe, send with receipts, ack, transaction,
failures, disconnect) with the ``stompws`` and ``websocket`` loggers at DEBUG and the root
logger capturing everything, then searches every captured byte (formatted records with their
tracebacks, the PrintingListener stream, the process's stdout and stderr, reprs and
messages of every object and exception the session produced) for the secrets.

websocket-client logs the handshake request (Authorization included) and every frame (the
CONNECT with its passcode included) only when its trace is on (``websocket.enableTrace``);
stompws never turns it on, which ``test_websocket_trace_stays_off`` checks. The embedded
broker's WebSocket server library (``websockets``) logs the request headers it receives at
DEBUG: that is the server side, so its records are left out here.
"""

from __future__ import annotations

import io
import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import websocket

import stompws
from stompws.testing import Broker

from .conftest import LOGIN, PASSCODE

WAIT = 10.0
TOKEN = f"Bearer tok-{os.urandom(8).hex()}"


class Capture(logging.Handler):
    """Formats every record, traceback included, as a log file would hold it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []
        self.names: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("websockets"):
            return  # the broker's server library (see the module docstring)
        self.names.add(record.name)
        self.lines.append(self.format(record))
        # The raw arguments too: a handler that formats differently still sees them.
        self.lines.append(repr(record.args))


@pytest.fixture
def captured() -> Iterator[Capture]:
    handler = Capture()
    root = logging.getLogger()
    saved = {
        name: logging.getLogger(name).level for name in ("", "stompws", "websocket", "websockets")
    }
    root.addHandler(handler)
    for name in ("", "stompws", "websocket"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    logging.getLogger("websockets").setLevel(logging.INFO)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def _forms(secret: str) -> list[str]:
    """The secret as it could show: as is, percent-encoded, as the token part alone."""
    forms = {secret, quote(secret, safe=""), secret.removeprefix("Bearer ")}
    return sorted(forms)


def _assert_absent(haystack: str, *secrets: str) -> None:
    for secret in secrets:
        for form in _forms(secret):
            assert form not in haystack, f"a secret ({form[:6]}...) leaked"


class Recorder(stompws.Listener):
    """Keeps every object a listener is handed, to search their reprs and strings."""

    def __init__(self) -> None:
        self.seen: list[object] = []

    def on_connected(self, frame: stompws.Frame) -> None:
        self.seen.append(frame)

    def on_send(self, frame: stompws.Frame) -> None:
        self.seen.append(frame)

    def on_message(self, frame: stompws.Frame) -> None:
        self.seen.append(frame)

    def on_receipt(self, frame: stompws.Frame) -> None:
        self.seen.append(frame)

    def on_error(self, frame: stompws.Frame) -> None:
        self.seen.append(frame)

    def on_disconnected(self, reason: BaseException | None) -> None:
        self.seen.append(reason)

    def on_listener_error(self, exc: BaseException, event: str) -> None:
        self.seen.append(exc)


class Raising(stompws.Listener):
    """A listener that fails with the frame in hand: the traceback is logged."""

    def on_send(self, frame: stompws.Frame) -> None:
        if frame.command == "CONNECT":
            raise RuntimeError(f"listener failed on {frame!r}")


def _describe(items: list[object]) -> str:
    parts = []
    for item in items:
        parts.append(repr(item))
        parts.append(str(item))
        if isinstance(item, BaseException):
            parts.extend(repr(arg) for arg in item.args)
            parts.append(repr(item.__cause__))
            parts.append(repr(item.__context__))
    return "\n".join(parts)


def _session(url: str, errors: list[object], **options: Any) -> list[object]:
    """A whole session; returns every object it produced."""
    printed = io.StringIO()
    recorder = Recorder()
    client = stompws.Client(url, heartbeats=(100, 100), connect_timeout=WAIT, **options)
    client.add_listener(stompws.PrintingListener(printed))
    client.add_listener(recorder)
    client.add_listener(Raising())
    produced: list[object] = [client]
    connected = client.connect()
    produced += [connected, client.session, client.server, client.url]
    queue = f"/queue/secret-{uuid.uuid4().hex[:8]}"
    inbox = client.subscribe(queue, ack="client-individual", receipt=True)
    receipt = client.send(queue, "hello", receipt=True)
    assert receipt is not None
    produced += [inbox, receipt, receipt.wait(WAIT)]
    message = inbox.get(timeout=WAIT)
    produced += [message, client.ack(message, receipt=True)]
    with client.transaction() as tx:
        tx.send(queue, "in a transaction")
        produced.append(tx)
    produced.append(inbox.get(timeout=WAIT))
    try:
        client.subscribe(queue, id=inbox.id)  # a duplicate id: UsageError
    except stompws.StompError as error:
        errors.append(error)
    client.disconnect()
    produced += [client, printed.getvalue(), *recorder.seen]
    return produced


def _failures(url: str, broker: Broker, errors: list[object], **options: Any) -> None:
    """The ways a connection fails, each producing an exception to search."""
    wrong = stompws.Client(url, heartbeats=(0, 0), **{**options, "passcode": "not-it"})
    with pytest.raises(stompws.BrokerError) as refused:
        wrong.connect(timeout=WAIT)
    wrong.disconnect()
    errors += [refused.value, wrong]
    # Nothing listens: ConnectError (a URL with credentials in it, here).
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dead = stompws.Client(
        f"stomp://{LOGIN}:{quote(PASSCODE)}@127.0.0.1:{port}", heartbeats=(0, 0), **options
    )
    with pytest.raises(stompws.ConnectError) as unreachable:
        dead.connect(timeout=WAIT)
    errors += [unreachable.value, dead]


@pytest.mark.parametrize("transport", ["ws", "tcp"])
def test_no_secret_in_logs_reprs_errors_or_printing_listener(
    broker: Broker,
    captured: Capture,
    capfd: pytest.CaptureFixture[str],
    transport: str,
) -> None:
    url = broker.ws_url if transport == "ws" else broker.tcp_url
    assert url is not None
    ws_headers = {"Authorization": TOKEN, "X-Api-Key": TOKEN} if transport == "ws" else None
    errors: list[object] = []
    produced = _session(url, errors, login=LOGIN, passcode=PASSCODE, ws_headers=ws_headers)
    _failures(url, broker, errors, login=LOGIN, ws_headers=ws_headers)
    # Credentials in the URL instead of keyword arguments.
    host_part = url.split("://", 1)[1]
    scheme = url.split("://", 1)[0]
    produced += _session(
        f"{scheme}://{LOGIN}:{quote(PASSCODE, safe='')}@{host_part}", errors, ws_headers=ws_headers
    )
    out, err = capfd.readouterr()

    assert any(name.startswith("stompws") for name in captured.names), captured.names
    assert "listener failed on Frame('CONNECT'" in "\n".join(captured.lines)
    assert any(isinstance(item, stompws.Frame) and item.command == "CONNECT" for item in produced)
    haystack = "\n".join([*captured.lines, out, err, _describe(produced), _describe(errors)])
    _assert_absent(haystack, PASSCODE, TOKEN)
    # The searches would find them: the PrintingListener output did show the login.
    assert LOGIN in haystack


def test_websocket_trace_stays_off(broker: Broker) -> None:
    # With its trace on, websocket-client logs the handshake request, Authorization
    # included, and every frame sent, CONNECT with its passcode included. stompws must
    # never turn it on for the user.
    assert broker.ws_url is not None
    with stompws.Client(
        broker.ws_url,
        login=LOGIN,
        passcode=PASSCODE,
        ws_headers={"Authorization": TOKEN},
        heartbeats=(0, 0),
    ):
        assert not websocket.isEnabledForTrace()
    assert not websocket.isEnabledForTrace()


def test_frame_and_endpoint_reprs_hide_secrets() -> None:
    connect = stompws.Frame(
        "CONNECT", [("login", LOGIN), ("passcode", PASSCODE), ("Authorization", TOKEN)]
    )
    assert PASSCODE not in repr(connect) and TOKEN not in repr(connect)
    printed = io.StringIO()
    stompws.PrintingListener(printed).on_send(connect)
    assert PASSCODE not in printed.getvalue() and TOKEN not in printed.getvalue()
    client = stompws.Client(f"wss://{LOGIN}:{quote(PASSCODE)}@127.0.0.1:1/ws")
    assert PASSCODE not in repr(client) and PASSCODE not in client.url
    assert quote(PASSCODE) not in repr(client)


@pytest.mark.parametrize(
    "url",
    [
        # A password with a character that should have been percent-encoded ends the
        # authority early; the URL is malformed, and the error that says so must not
        # quote the password.
        f"ws://{LOGIN}:{PASSCODE}/x@127.0.0.1:15674/ws",
        f"ws://{LOGIN}:{PASSCODE}#x@127.0.0.1:15674/ws",
        f"ws://{LOGIN}:{PASSCODE}?x@127.0.0.1:15674/ws",
        f"ftp://{LOGIN}:{PASSCODE}@127.0.0.1/",
        f"ws://{LOGIN}:{PASSCODE}@/ws",
    ],
    # Fixed ids: the password is random per process, and pytest-xdist's workers must
    # collect the same test names (nor should a report print the password).
    ids=["slash-in-password", "hash-in-password", "query-in-password", "ftp-scheme", "no-host"],
)
def test_malformed_url_errors_hide_the_password(url: str) -> None:
    with pytest.raises(stompws.UsageError) as caught:
        stompws.Client(url)
    assert PASSCODE not in str(caught.value)
    assert PASSCODE not in repr(caught.value)


def test_no_secret_in_thread_names(broker: Broker) -> None:
    assert broker.tcp_url is not None
    with stompws.Client(broker.tcp_url, login=LOGIN, passcode=PASSCODE, heartbeats=(100, 100)):
        names = " ".join(thread.name for thread in threading.enumerate())
    assert PASSCODE not in names
