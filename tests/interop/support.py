"""Peers, message cases and exchanges shared by the interoperability tests.

An *exchange* is one sender putting every message case on a fresh queue (each SEND with a
receipt) and then one receiver subscribing (with a receipt) and taking them all. Queues keep
messages until someone subscribes, so the two sides need no handshake and no sleeps. The
peers are stompws, stomp.py 9 (in this process, over TCP) and STOMP.js 7 (a Node process
running scripts/interop/stompjs_peer.cjs, over WebSocket).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import stomp  # type: ignore[import-untyped]

import stompws

from ..support import brokers as real

LOGIN = "guest"
PASSCODE = "guest"
VERSIONS = ("1.0", "1.1", "1.2")
WAIT = 10.0  # seconds for anything that should arrive: a failure, never a slow pass

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts" / "interop"
SETUP = "scripts/interop/setup.sh"
NODE_MODULES = Path(os.environ.get("STOMPWS_INTEROP_DIR", ROOT / ".interop")) / "node_modules"


@dataclass(frozen=True)
class Endpoint:
    """A broker port: what the tests connect to and how the table names it."""

    name: str  # "rabbitmq-ws"
    broker: str  # "RabbitMQ", "ActiveMQ", "stomp-broker-js"
    transport: str  # "WebSocket" or "TCP"
    url: str
    host: str
    port: int

    @property
    def label(self) -> str:
        return f"{self.broker} {self.transport}"


RABBITMQ_WS = Endpoint(
    "rabbitmq-ws", "RabbitMQ", "WebSocket", real.RABBITMQ_WS_URL, real.HOST, real.RABBITMQ_WS_PORT
)
RABBITMQ_TCP = Endpoint(
    "rabbitmq-tcp", "RabbitMQ", "TCP", real.RABBITMQ_TCP_URL, real.HOST, real.RABBITMQ_STOMP_PORT
)
ACTIVEMQ_TCP = Endpoint(
    "activemq-tcp", "ActiveMQ", "TCP", real.ACTIVEMQ_TCP_URL, real.HOST, real.ACTIVEMQ_STOMP_PORT
)
ENDPOINTS = {e.name: e for e in (RABBITMQ_WS, RABBITMQ_TCP, ACTIVEMQ_TCP)}


def new_queue() -> str:
    """A queue name never used before (queues outlive the test on both brokers)."""
    return real.new_queue("interop")


# -- message cases --------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One message that must cross from one client to another unchanged."""

    name: str  # also sent as the x-case header, to match what arrives with what was sent
    feature: str  # the row of the compatibility table
    body: bytes
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    versions: tuple[str, ...] = VERSIONS  # STOMP 1.0 cannot carry some header values
    text: bool = True  # a str body for clients that send text (valid UTF-8)


CASES = (
    Case("text", "text body", b"hello, interop"),
    Case(
        "unicode",
        "unicode body",
        "héllo wörld ✓ 日本語 😀".encode(),
        content_type="text/plain; charset=utf-8",
    ),
    # NUL bytes are valid UTF-8: such a body can travel in a text WebSocket message.
    Case(
        "nul",
        "binary body with NUL bytes",
        b"\x00head\x00 middle \x00\x00tail\x00",
        content_type="application/octet-stream",
        text=False,
    ),
    Case(
        "non-utf8",
        "binary body, not UTF-8",
        b"\xff\xfe\x80 bytes \x00 \xc3(",
        content_type="application/octet-stream",
        text=False,
    ),
    Case("blank-lines", "body with blank lines", b"line one\n\nline two\r\n\r\nend"),
    Case(
        "content-type",
        "content-type",
        b'{"k": [1, 2]}',
        content_type="application/json;charset=utf-8",
    ),
    Case("colon", "header value with `:`", b"colon", headers={"x-colon": "key:value:more"}),
    Case(
        "newline",
        "header value with `\\n`",
        b"newline",
        headers={"x-newline": "line one\nline two"},
        versions=("1.1", "1.2"),
    ),
    Case(
        "backslash",
        "header value with `\\`",
        b"backslash",
        headers={"x-backslash": "C:\\path\\to\\file"},
        versions=("1.1", "1.2"),
    ),
    # A backslash before n, c or r: the escaped form holds "\\n", which a decoder that
    # replaces escapes one kind after another reads as a newline.
    Case(
        "escape-like",
        "header value with `\\` before n, c, r",
        b"escape-like",
        headers={"x-escape-like": "C:\\new\\cache\\r"},
        versions=("1.1", "1.2"),
    ),
)
CASE_NAMES = tuple(case.name for case in CASES)


def cases_for(version: str, *, skip: Sequence[str] = ()) -> list[Case]:
    return [case for case in CASES if version in case.versions and case.name not in skip]


@dataclass
class Received:
    """A MESSAGE as the receiving client reported it."""

    headers: dict[str, str]
    body: bytes


@dataclass
class Exchange:
    """What one receiver reported: per case name the message that arrived."""

    subscribe_receipt: bool = False
    messages: dict[str, Received] = field(default_factory=dict)
    error: str | None = None  # the receiver failed before it had every message


@dataclass(frozen=True)
class Outcome:
    """What became of one case: the message that arrived, or why none did."""

    received: Received | None
    error: str | None
    sender_receipts: int  # RECEIPTs the sender got for its SENDs of this case
    subscribe_receipt: bool


class SendFailed(Exception):
    """A sender stopped after ``sent`` confirmed SENDs (the next one failed)."""

    def __init__(self, sent: int, message: str) -> None:
        super().__init__(message)
        self.sent = sent


Sender = Callable[[str, Sequence[Case]], int]  # (queue, cases) -> SENDs confirmed by RECEIPT
Receiver = Callable[[str, int], Exchange]  # (queue, count) -> what arrived

NOT_RUN = "not run: an earlier case of its batch failed"


def run_exchange(sender: Sender, receiver: Receiver, cases: Sequence[Case]) -> dict[str, Outcome]:
    """Every case from ``sender`` to ``receiver``, in batches through fresh queues.

    A case that kills a connection (a broker refusing a header, a client refusing a
    WebSocket message) stops its batch there. The queue keeps the sender's order, so the
    cases before it crossed and stand; the failing case runs again alone, to be blamed only
    for what it does itself, and the cases after it make the next batch.
    """
    results: dict[str, Outcome] = {}
    remaining = list(cases)
    while remaining:
        batch = _exchange(sender, receiver, remaining)
        bad = next((i for i, c in enumerate(remaining) if batch[c.name].error is not None), None)
        if bad is None:
            results.update(batch)
            break
        results.update({case.name: batch[case.name] for case in remaining[:bad]})
        culprit = remaining[bad]
        alone = batch if len(remaining) == 1 else _exchange(sender, receiver, [culprit])
        results[culprit.name] = alone[culprit.name]
        remaining = remaining[bad + 1 :]
    return results


def _exchange(sender: Sender, receiver: Receiver, cases: Sequence[Case]) -> dict[str, Outcome]:
    queue = new_queue()
    send_error: str | None = None
    try:
        sent = sender(queue, cases)
    except SendFailed as error:
        sent, send_error = error.sent, f"sender: {error}"
    except Exception as error:  # any failure of a peer is a result to report, not a crash
        sent, send_error = 0, f"sender: {error}"
    exchange = Exchange()
    if sent:
        try:
            exchange = receiver(queue, sent)
        except Exception as error:
            exchange = Exchange(error=f"receiver: {error}")
    outcomes = {}
    for index, case in enumerate(cases):
        if index < sent:
            received = exchange.messages.get(case.name)
            problem = None if received else exchange.error or "never arrived"
            outcomes[case.name] = Outcome(received, problem, 1, exchange.subscribe_receipt)
        else:
            problem = send_error if index == sent and send_error else NOT_RUN
            outcomes[case.name] = Outcome(None, problem, 0, False)
    return outcomes


# -- stompws --------------------------------------------------------------------------------


def stompws_client(url: str, version: str, **options: Any) -> stompws.Client:
    options.setdefault("heartbeats", (0, 0))
    return stompws.Client(url, login=LOGIN, passcode=PASSCODE, versions=[version], **options)


def stompws_send(url: str, version: str, queue: str, cases: Sequence[Case]) -> int:
    receipts = 0
    with stompws_client(url, version) as client:
        assert client.version == version
        try:
            for case in cases:
                receipt = client.send(
                    queue,
                    case.body.decode() if case.text else case.body,
                    content_type=case.content_type,
                    headers={**case.headers, "x-case": case.name},
                    receipt=True,
                )
                assert receipt is not None
                receipt.wait(WAIT)
                receipts += 1
        except stompws.StompError as error:
            raise SendFailed(receipts, f"{type(error).__name__}: {error}") from error
    return receipts


def stompws_receive(url: str, version: str, queue: str, count: int) -> Exchange:
    exchange = Exchange()
    with stompws_client(url, version) as client:
        subscription = client.subscribe(queue, receipt=True)
        exchange.subscribe_receipt = True  # subscribe(receipt=True) waits for it
        for _ in range(count):
            frame = subscription.get(timeout=WAIT)
            exchange.messages[frame.headers.get("x-case", "?")] = Received(
                dict(frame.headers), frame.body
            )
    return exchange


# -- stomp.py 9 -----------------------------------------------------------------------------


class _StompPyListener(stomp.ConnectionListener):  # type: ignore[misc]
    def __init__(self) -> None:
        self.frames: list[Any] = []
        self.receipts: list[str] = []
        self.errors: list[Any] = []
        self.condition = threading.Condition()

    def on_message(self, frame: Any) -> None:
        with self.condition:
            self.frames.append(frame)
            self.condition.notify_all()

    def on_receipt(self, frame: Any) -> None:
        with self.condition:
            self.receipts.append(frame.headers["receipt-id"])
            self.condition.notify_all()

    def on_error(self, frame: Any) -> None:
        with self.condition:
            self.errors.append(frame)
            self.condition.notify_all()

    def wait(self, what: str, ready: Any) -> None:
        deadline = time.monotonic() + WAIT
        with self.condition:
            while not ready():
                if self.errors:
                    raise AssertionError(f"stomp.py got ERROR {self.errors[0]} waiting for {what}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"stomp.py: no {what} within {WAIT:g} s")
                self.condition.wait(remaining)


def stomppy_connect(endpoint: Endpoint, version: str) -> tuple[Any, _StompPyListener]:
    # auto_decode=False: bodies stay bytes, so NULs and non-UTF-8 bytes can be compared.
    # RabbitMQ wants vhost "/" from stomp.py 9, which sends the host it connected to otherwise.
    address = [(endpoint.host, endpoint.port)]
    connection: Any
    if version == "1.0":
        connection = stomp.Connection10(address, auto_decode=False)
    else:
        kind = stomp.Connection11 if version == "1.1" else stomp.Connection12
        connection = kind(address, auto_decode=False, vhost="/", heartbeats=(0, 0))
    listener = _StompPyListener()
    connection.set_listener("interop", listener)
    connection.connect(LOGIN, PASSCODE, wait=True)
    return connection, listener


def stomppy_send(endpoint: Endpoint, version: str, queue: str, cases: Sequence[Case]) -> int:
    connection, listener = stomppy_connect(endpoint, version)
    try:
        for case in cases:
            receipt = f"stomppy-{uuid.uuid4().hex}"
            connection.send(
                queue,
                case.body,
                content_type=case.content_type,
                headers={**case.headers, "x-case": case.name, "receipt": receipt},
            )
            try:
                listener.wait(f"RECEIPT {receipt}", lambda r=receipt: r in listener.receipts)
            except AssertionError as error:
                raise SendFailed(len(listener.receipts), str(error)) from error
        return len(listener.receipts)
    finally:
        connection.disconnect()


def stomppy_receive(endpoint: Endpoint, version: str, queue: str, count: int) -> Exchange:
    exchange = Exchange()
    connection, listener = stomppy_connect(endpoint, version)
    try:
        receipt = f"stomppy-sub-{uuid.uuid4().hex}"
        connection.subscribe(queue, id="interop", ack="auto", headers={"receipt": receipt})
        listener.wait("the SUBSCRIBE receipt", lambda: receipt in listener.receipts)
        exchange.subscribe_receipt = True
        listener.wait(f"{count} messages", lambda: len(listener.frames) >= count)
        for frame in listener.frames:
            body = frame.body if isinstance(frame.body, bytes) else frame.body.encode()
            exchange.messages[frame.headers.get("x-case", "?")] = Received(
                dict(frame.headers), body
            )
        return exchange
    finally:
        connection.disconnect()


# -- STOMP.js 7 -----------------------------------------------------------------------------


def node_problem() -> str | None:
    """None when node and the pinned packages are installed, else what to do."""
    if shutil.which("node") is None:
        return f"node is not installed (install Node.js 18+ and run {SETUP})"
    for package in ("@stomp/stompjs", "ws", "stomp-broker-js"):
        if not (NODE_MODULES / package / "package.json").is_file():
            return f"{package} is not installed in {NODE_MODULES}: run {SETUP}"
    return None


def node_env() -> dict[str, str]:
    # NODE_PATH lets the scripts in scripts/interop/ find the private install in .interop/.
    return {**os.environ, "NODE_PATH": str(NODE_MODULES)}


def run_stompjs(job: dict[str, Any], timeout: float = WAIT) -> dict[str, Any]:
    """Run one STOMP.js session (see stompjs_peer.cjs) and return its JSON report."""
    job = {"login": LOGIN, "passcode": PASSCODE, "timeoutMs": int(timeout * 1000), **job}
    process = subprocess.run(
        ["node", str(SCRIPTS / "stompjs_peer.cjs")],
        input=json.dumps(job).encode(),
        capture_output=True,
        timeout=timeout + 5,  # the script times itself out first and says so
        env=node_env(),
        check=False,
    )
    lines = process.stdout.decode().strip().splitlines()
    if not lines:
        raise AssertionError(
            f"stompjs_peer.cjs printed nothing (exit {process.returncode}): "
            f"{process.stderr.decode()[-2000:]}"
        )
    report: dict[str, Any] = json.loads(lines[-1])
    return report


def stompjs_message(case: Case, queue: str) -> dict[str, Any]:
    message: dict[str, Any] = {
        "destination": queue,
        "headers": {**case.headers, "x-case": case.name},
        "receipt": True,
    }
    if case.content_type:
        message["headers"]["content-type"] = case.content_type
    if case.text:
        message["body"] = case.body.decode()
    else:
        message["bodyBase64"] = base64.b64encode(case.body).decode()
    return message


def received_from_stompjs(message: dict[str, Any]) -> Received:
    return Received(dict(message["headers"]), base64.b64decode(message["bodyBase64"]))


def stompjs_send(url: str, version: str, queue: str, cases: Sequence[Case]) -> int:
    report = run_stompjs(
        {"url": url, "version": version, "send": [stompjs_message(c, queue) for c in cases]}
    )
    if not report["ok"]:
        sent = len(report.get("receipts", []))
        raise SendFailed(sent, f"STOMP.js sender failed: {report['error']}")
    assert report["version"] == version
    return len(report["receipts"])


def stompjs_receive(url: str, version: str, queue: str, count: int) -> Exchange:
    report = run_stompjs(
        {
            "url": url,
            "version": version,
            "receive": {"destination": queue, "count": count, "receipt": True},
        }
    )
    exchange = Exchange(subscribe_receipt=bool(report.get("receipts")))
    for message in report.get("messages", []):
        received = received_from_stompjs(message)
        exchange.messages[received.headers.get("x-case", "?")] = received
    if not report["ok"]:
        exchange.error = f"STOMP.js receiver failed: {report['error']}"
    return exchange


# -- routes between stompws and another client -----------------------------------------------

STOMPPY = "stomp.py 9"
STOMPJS = "STOMP.js 7"


@dataclass(frozen=True)
class Route:
    """stompws and another client exchanging messages through one broker, one way."""

    peer: str  # STOMPPY or STOMPJS
    stompws_sends: bool
    endpoint: Endpoint  # where stompws connects
    peer_endpoint: Endpoint  # where the other client connects
    version: str  # both sides offer only this one

    @property
    def broker(self) -> str:
        return self.endpoint.broker

    @property
    def section(self) -> str:
        return f"stompws ↔ {self.peer}"

    @property
    def column(self) -> str:
        ours = f"stompws {self.endpoint.transport}"
        theirs = f"{self.peer} {self.peer_endpoint.transport}"
        arrow = f"{ours} → {theirs}" if self.stompws_sends else f"{theirs} → {ours}"
        return f"{self.broker}: {arrow}"

    @property
    def id(self) -> str:
        peer = "stomppy" if self.peer == STOMPPY else "stompjs"
        way = f"stompws-{self.endpoint.name}-to-{peer}"
        if not self.stompws_sends:
            way = f"{peer}-to-stompws-{self.endpoint.name}"
        return f"{way}-{self.version}"

    @property
    def needs(self) -> tuple[str, ...]:
        names = {self.endpoint.name, self.peer_endpoint.name}
        return (*sorted(names), *(("node",) if self.peer == STOMPJS else ()))

    def _peer_send(self, queue: str, cases: Sequence[Case]) -> int:
        if self.peer == STOMPPY:
            return stomppy_send(self.peer_endpoint, self.version, queue, cases)
        return stompjs_send(self.peer_endpoint.url, self.version, queue, cases)

    def _peer_receive(self, queue: str, count: int) -> Exchange:
        if self.peer == STOMPPY:
            return stomppy_receive(self.peer_endpoint, self.version, queue, count)
        return stompjs_receive(self.peer_endpoint.url, self.version, queue, count)

    def _stompws_send(self, queue: str, cases: Sequence[Case]) -> int:
        return stompws_send(self.endpoint.url, self.version, queue, cases)

    def _stompws_receive(self, queue: str, count: int) -> Exchange:
        return stompws_receive(self.endpoint.url, self.version, queue, count)

    def run(self, cases: Sequence[Case]) -> dict[str, Outcome]:
        if self.stompws_sends:
            return run_exchange(self._stompws_send, self._peer_receive, cases)
        return run_exchange(self._peer_send, self._stompws_receive, cases)


def routes() -> list[Route]:
    found = []
    for version in VERSIONS:
        for endpoint, peer_endpoint in (
            (RABBITMQ_WS, RABBITMQ_TCP),
            (RABBITMQ_TCP, RABBITMQ_TCP),
            (ACTIVEMQ_TCP, ACTIVEMQ_TCP),
        ):
            for sends in (True, False):
                found.append(Route(STOMPPY, sends, endpoint, peer_endpoint, version))
        # STOMP.js speaks only WebSocket, and only RabbitMQ offers it here.
        for sends in (True, False):
            found.append(Route(STOMPJS, sends, RABBITMQ_WS, RABBITMQ_WS, version))
    return found


@dataclass(frozen=True)
class Target:
    """stompws alone against one broker endpoint, offering one STOMP version."""

    endpoint: Endpoint
    version: str
    section: str

    @property
    def column(self) -> str:
        return self.endpoint.label

    @property
    def websocket(self) -> bool:
        return self.endpoint.transport == "WebSocket"


def targets(section: str, *endpoints: Endpoint, versions: Sequence[str] = VERSIONS) -> list[Any]:
    """``target`` parameters, with ids such as ``rabbitmq-ws-1.2``."""
    return [
        pytest.param(Target(endpoint, version, section), id=f"{endpoint.name}-{version}")
        for endpoint in endpoints
        for version in versions
    ]
