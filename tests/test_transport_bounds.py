"""Every write is bounded and abort() wakes whoever waits, over TCP, TLS, ws:// and wss://.

The peer here accepts, finishes the TLS and WebSocket handshakes, and then never reads, with
a tiny receive buffer: any large write must block until the transport gives up. The
concurrency test runs a reader and several writers on one TLS transport against an echoing
peer and checks that every byte comes back in order (an SSL object used by two threads at
once can corrupt its records).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import os
import random
import socket
import ssl
import struct
import sys
import termios
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from stompws.errors import ConnectionClosed
from stompws.transport import HandshakeGuard, Transport, open_transport, parse_url

from .security.certs import Certificates, have_openssl, make_certificates

LINUX_ONLY = pytest.mark.skipif(
    sys.platform != "linux", reason="watches the kernel's send queue and thread states (Linux)"
)
KINDS = ["stomp", "stomp+ssl", "ws", "wss"]
BIG = b"x" * (16 << 20)  # far more than every buffer between us and the peer
MARGIN = 1.0  # a loaded 2-core machine; the bounds under test are far apart from it
_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    if not have_openssl():
        pytest.skip("the openssl command is needed to make test certificates")
    return make_certificates(tmp_path_factory.mktemp("certs"))


def _server_context(certificates: Certificates) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificates.server.cert, certificates.server.key)
    return context


def _client_context(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


def _answer_ws_handshake(sock: socket.socket) -> None:
    request = b""
    while b"\r\n\r\n" not in request:
        chunk = sock.recv(4096)
        assert chunk, "client closed during the handshake"
        request += chunk
    key = next(
        line.split(b":", 1)[1].strip()
        for line in request.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    )
    accept = base64.b64encode(hashlib.sha1(key + _WS_GUID).digest())
    sock.sendall(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept + b"\r\nSec-WebSocket-Protocol: v12.stomp\r\n\r\n"
    )


class Peer:
    """One connection on 127.0.0.1: handshakes done, then ``serve(conn)`` on its thread."""

    def __init__(
        self,
        kind: str,
        certificates: Certificates | None,
        serve: Callable[[socket.socket], None] | None = None,
        rcvbuf: int | None = 4096,
    ) -> None:
        self.kind = kind
        self.listener = socket.socket()
        if rcvbuf is not None:  # before listen(): the accepted socket inherits it
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.port = self.listener.getsockname()[1]
        self.tls = kind in ("stomp+ssl", "wss")
        self.context = _server_context(certificates) if self.tls and certificates else None
        self.serve = serve
        self.conn: socket.socket | None = None
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, name="test-peer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.listener.settimeout(10)
            conn, _ = self.listener.accept()
            conn.settimeout(10)
            if self.context is not None:
                conn = self.context.wrap_socket(conn, server_side=True)
            self.conn = conn
            if self.kind in ("ws", "wss"):
                _answer_ws_handshake(conn)
            if self.serve is not None:
                self.serve(conn)
        except OSError as error:  # the test ended the connection
            self.errors.append(error)

    def open(self, write_timeout: float, ca: Path | None = None) -> Transport:
        path = "/ws" if self.kind in ("ws", "wss") else ""
        return open_transport(
            parse_url(f"{self.kind}://127.0.0.1:{self.port}{path}"),
            guard=HandshakeGuard(10),
            ssl_context=_client_context(ca) if ca is not None else None,
            ws_headers=None,
            versions=("1.2",),
            write_timeout=write_timeout,
        )

    def close(self) -> None:
        # Closing with unread data sends a reset: a sender still blocked on us (a defect)
        # wakes with an error instead of hanging the test run.
        # The shutdown wakes our own thread if it waits in recv (close would not).
        if self.conn is not None:
            with contextlib.suppress(OSError):
                self.conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                socket.socket.shutdown(self.conn, socket.SHUT_RDWR)
            self.conn.close()
        self.listener.close()
        self.thread.join(10)


class Outcome:
    """A call run on its own thread: how long it took and what it raised."""

    def __init__(self, call: Callable[[], object]) -> None:
        self.error: BaseException | None = None
        self.started = time.monotonic()
        self.ended: float | None = None
        self._call = call
        self.thread = threading.Thread(target=self._run, name="test-sender", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self._call()
        except BaseException as error:
            self.error = error
        finally:
            self.ended = time.monotonic()

    def wait(self, limit: float) -> float:
        """Seconds from start to end; fails when the call is still running after ``limit``."""
        self.thread.join(limit)
        assert self.ended is not None, f"still blocked after {limit:g} s"
        return self.ended - self.started


@pytest.fixture
def peers(certificates: Certificates) -> Iterator[Callable[..., tuple[Peer, Transport]]]:
    made: list[tuple[Peer, Transport | None]] = []

    def make(kind: str, write_timeout: float, **options: object) -> tuple[Peer, Transport]:
        peer = Peer(kind, certificates, **options)  # type: ignore[arg-type]
        made.append((peer, None))
        transport = peer.open(write_timeout, certificates.ca if peer.tls else None)
        made[-1] = (peer, transport)
        return peer, transport

    yield make
    for peer, transport in made:
        peer.close()  # first: it wakes a sender the defect left blocked
        if transport is not None:
            transport.abort()
    for _, transport in made:
        if transport is not None:
            transport.close()


def _socket_of(transport: Transport) -> socket.socket:
    stream = getattr(transport, "_stream", None)
    sock = getattr(stream, "sock", None) if stream is not None else None
    if sock is None:
        sock = transport._sock  # type: ignore[attr-defined]
    assert isinstance(sock, socket.socket)
    return sock


def _unsent(sock: socket.socket) -> int:
    """Bytes the kernel holds for sending (Linux SIOCOUTQ)."""
    raw = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, struct.pack("i", 0))
    return int(struct.unpack("i", raw)[0])


def _wait_until_blocked(sock: socket.socket, outcome: Outcome) -> None:
    """Until the kernel's send queue is full and stays so: the sender is waiting on it."""
    deadline = time.monotonic() + 10
    last = -1
    while time.monotonic() < deadline and outcome.ended is None:
        queued = _unsent(sock)
        if queued > 0 and queued == last:
            return
        last = queued
        outcome.thread.join(0.05)  # a bounded wait for the sender, which also paces us
    raise AssertionError(f"the sender never blocked (ended: {outcome.error!r})")


@pytest.mark.parametrize("kind", KINDS)
def test_send_to_a_peer_that_stops_reading_fails_after_write_timeout(
    peers: Callable[..., tuple[Peer, Transport]], kind: str
) -> None:
    _, transport = peers(kind, write_timeout=0.5)
    outcome = Outcome(lambda: transport.send(BIG))
    elapsed = outcome.wait(0.5 + MARGIN + 3)  # the extra: report a hang as a failure
    assert isinstance(outcome.error, ConnectionClosed), outcome.error
    assert "write_timeout" in str(outcome.error)
    assert isinstance(outcome.error, TimeoutError)
    assert 0.5 <= elapsed < 0.5 + MARGIN, elapsed


@pytest.mark.parametrize("kind", KINDS)
def test_a_shorter_timeout_shortens_the_bound(
    peers: Callable[..., tuple[Peer, Transport]], kind: str
) -> None:
    _, transport = peers(kind, write_timeout=30)
    outcome = Outcome(lambda: transport.send(BIG, timeout=0.3))
    elapsed = outcome.wait(0.3 + MARGIN + 3)
    assert isinstance(outcome.error, ConnectionClosed), outcome.error
    assert 0.3 <= elapsed < 0.3 + MARGIN, elapsed


@LINUX_ONLY
@pytest.mark.parametrize("kind", KINDS)
def test_abort_wakes_a_blocked_send_at_once(
    peers: Callable[..., tuple[Peer, Transport]], kind: str
) -> None:
    _, transport = peers(kind, write_timeout=30)
    outcome = Outcome(lambda: transport.send(BIG))
    _wait_until_blocked(_socket_of(transport), outcome)
    aborted = time.monotonic()
    transport.abort()
    outcome.wait(10)
    assert outcome.ended is not None
    assert outcome.ended - aborted < 0.5, outcome.ended - aborted
    assert isinstance(outcome.error, ConnectionClosed), outcome.error


@LINUX_ONLY
@pytest.mark.parametrize("kind", KINDS)
def test_abort_wakes_a_blocked_recv_at_once(
    peers: Callable[..., tuple[Peer, Transport]], kind: str
) -> None:
    _, transport = peers(kind, write_timeout=30)
    outcome = Outcome(transport.recv)
    _wait_until_thread_waits(outcome.thread)
    aborted = time.monotonic()
    transport.abort()
    outcome.wait(10)
    assert outcome.ended is not None
    assert outcome.ended - aborted < 0.5, outcome.ended - aborted
    assert isinstance(outcome.error, ConnectionClosed), outcome.error
    assert "abort" in str(outcome.error)


def _wait_until_thread_waits(thread: threading.Thread) -> None:
    """Until ``thread`` sleeps in the kernel (Linux /proc): it is inside its blocking call."""
    path = Path(f"/proc/self/task/{thread.native_id}/stat")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        state = path.read_text().rsplit(")", 1)[1].split()[0]
        if state == "S":
            return
        thread.join(0.01)
    raise AssertionError("the reader never blocked")


def _echo(conn: socket.socket) -> None:
    while data := conn.recv(65536):
        conn.sendall(data)


def test_reader_and_writers_share_one_tls_transport(
    peers: Callable[..., tuple[Peer, Transport]],
) -> None:
    _, transport = peers("stomp+ssl", write_timeout=30, serve=_echo, rcvbuf=None)
    writers, records = 4, 150
    sent: list[bytes] = []
    send_lock = threading.Lock()  # the client serialises sends (the Transport contract)

    def write(number: int) -> None:
        rng = random.Random(number)
        for seq in range(records):
            record = f"<{number}:{seq}>".encode() + os.urandom(rng.randrange(1, 40_000))
            with send_lock:
                sent.append(record)
                transport.send(record)

    end = b"<end>"
    expected: list[int] = []  # set before the last record goes out (see below)
    received: list[bytes] = []

    def read() -> None:
        total = 0
        while not expected or total < expected[0]:
            data = transport.recv()
            received.append(data)
            total += len(data)

    threads = [
        threading.Thread(target=write, args=(n,), name=f"test-writer-{n}") for n in range(writers)
    ]
    reader = Outcome(read)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
        assert not thread.is_alive()
    # The total is known before the last record is sent, so the reader, which can have
    # read everything only after that record, always sees it.
    expected.append(sum(map(len, sent)) + len(end))
    sent.append(end)
    transport.send(end)
    reader.wait(60)
    assert reader.error is None, reader.error
    assert b"".join(received) == b"".join(sent)


class _WatchedSSL:
    """Stands in for an SSLSocket's OpenSSL object and counts calls that overlap."""

    def __init__(self, inner: object) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self._inside = 0
        self.overlaps = 0
        self.calls = 0

    def _watched(self, name: str, *args: object) -> object:
        with self._lock:
            self._inside += 1
            self.calls += 1
            if self._inside > 1:
                self.overlaps += 1
        try:
            return getattr(self._inner, name)(*args)
        finally:
            with self._lock:
                self._inside -= 1

    def read(self, *args: object) -> object:
        return self._watched("read", *args)

    def write(self, *args: object) -> object:
        return self._watched("write", *args)

    def pending(self) -> object:
        return self._watched("pending")

    def __getattr__(self, name: str) -> object:
        return getattr(self._inner, name)


def test_tls_reads_and_writes_never_overlap_on_the_ssl_object(
    peers: Callable[..., tuple[Peer, Transport]],
) -> None:
    _, transport = peers("stomp+ssl", write_timeout=30, serve=_echo, rcvbuf=None)
    sock = _socket_of(transport)
    assert isinstance(sock, ssl.SSLSocket)
    watched = _WatchedSSL(sock._sslobj)  # type: ignore[attr-defined]
    sock._sslobj = watched  # type: ignore[attr-defined]
    records, size = 200, 20_000
    reader = Outcome(lambda: _read_exactly(transport, records * size))
    beats = Outcome(lambda: [transport.readable_now() for _ in range(2000)])
    for _ in range(records):
        transport.send(os.urandom(size))
    reader.wait(60)
    beats.wait(60)
    assert reader.error is None and beats.error is None, (reader.error, beats.error)
    assert watched.calls > records
    assert watched.overlaps == 0, f"{watched.overlaps} of {watched.calls} SSL calls overlapped"


def _read_exactly(transport: Transport, total: int) -> None:
    got = 0
    while got < total:
        got += len(transport.recv())
