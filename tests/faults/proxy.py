"""A loopback TCP proxy that injects network faults between a client and a broker.

``FaultProxy(target_host, target_port)`` listens on 127.0.0.1 (port 0: the system picks one)
and forwards every accepted connection to the target, byte for byte. It knows nothing of
STOMP or WebSocket, so it works for both: ``proxy.url_for("ws://127.0.0.1:15674/ws")`` is
``ws://127.0.0.1:<proxy port>/ws``.

The faults apply to every connection, open or future, until they are changed:

* ``cut()`` closes every open connection, both sides: each peer sees an orderly close (FIN),
  or a reset (RST) with ``cut(reset=True)``. New connections are accepted as before.
* ``freeze()`` stops forwarding in both directions and keeps the sockets open, like a network
  that silently drops everything. What arrives meanwhile, an end of stream included, is held
  and forwarded by ``unfreeze()``. When ``freeze()`` returns, no byte passes any more.
* ``delay(seconds)`` forwards each chunk that many seconds after it was read (latency, not a
  bandwidth limit: chunks stay in order). ``delay(0)`` ends it.
* ``trickle(pause)`` forwards one byte at a time with ``pause`` seconds between bytes, in
  both directions or one (``direction="down"``: target to client); ``trickle(None)`` ends
  it.
* ``refuse()`` closes the listening socket, so that new connections are refused
  (ECONNREFUSED); ``accept()`` listens on the same port again. When the target itself refuses,
  the accepted connection is reset at once.

Threads: ``faultproxy-<port>-accept`` owns the listening socket; each connection has two
pumps, ``faultproxy-<port>-<n>-up`` (client to target) and ``faultproxy-<port>-<n>-down``.
A pump reads with a blocking ``recv`` and is woken for a cut by ``shutdown``, which is safe
across threads (closing a socket under a blocked reader is not); the last pump of a
connection closes both its sockets. ``stop()`` cuts everything, joins every thread with a
timeout and raises if one did not end. Every byte forwarded is kept in ``records`` so that a
test can read what the client sent on each connection.
"""

from __future__ import annotations

import contextlib
import itertools
import select
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit

__all__ = ["FaultProxy", "LinkRecord"]

_CHUNK = 65536
_POLL = 0.05  # threads waiting for an order re-check it this often (seconds)
_JOIN = 5.0  # how long stop() and cut() wait for each thread (seconds)
_UPSTREAM_CONNECT = 5.0  # seconds to connect to the target


@dataclass
class LinkRecord:
    """What passed through one connection, in each direction."""

    number: int
    up: bytearray = field(default_factory=bytearray)  # client to target
    down: bytearray = field(default_factory=bytearray)  # target to client
    closed: threading.Event = field(default_factory=threading.Event)
    client_spoke: threading.Event = field(default_factory=threading.Event)  # read, maybe held
    client_address: tuple[str, int] = ("", 0)  # where the client connected from


class _Link:
    """One proxied connection: two sockets and the two pumps between them."""

    def __init__(
        self, number: int, client: socket.socket, upstream: socket.socket, record: LinkRecord
    ) -> None:
        self.number = number
        self.client = client
        self.upstream = upstream
        self.record = record
        self.dead = threading.Event()  # cut: nothing more is forwarded
        self.threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._pumps_left = 2

    def kill(self, reset: bool) -> None:
        """Stop forwarding and wake both pumps; they close the sockets on their way out."""
        self.dead.set()
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                if reset:
                    # An abortive close (RST) when the pump closes the socket; SHUT_RD only
                    # wakes the pump's recv and sends nothing.
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    sock.shutdown(socket.SHUT_RD)
                else:
                    sock.shutdown(socket.SHUT_RDWR)

    def pump_ended(self) -> bool:
        """Called by each pump as it ends; True for the last one, which closed the sockets."""
        with self._lock:
            self._pumps_left -= 1
            if self._pumps_left:
                return False
        self.dead.set()
        self.client.close()
        self.upstream.close()
        self.record.closed.set()
        return True


class FaultProxy:
    """A threaded loopback proxy to ``target_host:target_port`` that can cut, freeze, delay,
    trickle and refuse; see the module docstring. Use it as a context manager, or call
    ``start()`` and ``stop()``."""

    def __init__(self, target_host: str, target_port: int, *, port: int = 0) -> None:
        self.target = (target_host, target_port)
        self.host = "127.0.0.1"
        self.port = port
        self.records: list[LinkRecord] = []
        self._changed = threading.Condition()  # guards every field below
        self._links: dict[int, _Link] = {}
        self._numbers = itertools.count(1)
        self._frozen = False
        self._in_flight = 0  # forwards that passed the freeze gate and are writing
        self._delay = 0.0
        self._trickle: dict[str, float] = {}  # direction ("up", "down") -> pause
        self._want_listening = True
        self._listening = False
        self._stopping = False
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._link_threads: list[threading.Thread] = []

    def __repr__(self) -> str:
        return f"<FaultProxy 127.0.0.1:{self.port} -> {self.target[0]}:{self.target[1]}>"

    # -- life cycle --------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        if self._acceptor is not None:
            raise RuntimeError("the proxy was started already")
        self._listener = self._listen()
        self.port = self._listener.getsockname()[1]
        self._listening = True
        self._acceptor = threading.Thread(
            target=self._accept_loop, name=f"faultproxy-{self.port}-accept", daemon=True
        )
        self._acceptor.start()
        return self

    def stop(self) -> None:
        """Close the listener and every connection; join every thread (raises if one hangs)."""
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        stuck: list[str] = []
        if self._acceptor is not None:
            self._acceptor.join(_JOIN)  # first: it opens no connection after this
            if self._acceptor.is_alive():
                stuck.append(self._acceptor.name)
        self.cut()
        with self._changed:
            threads = self._link_threads
            self._link_threads = []
        for thread in threads:
            thread.join(_JOIN)
            if thread.is_alive():
                stuck.append(thread.name)
        if stuck:
            raise RuntimeError(f"{self!r}: threads did not stop: {stuck}")

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses ---------------------------------------------------------------------------

    def url_for(self, url: str) -> str:
        """``url`` with its host and port replaced by the proxy's (scheme, path, user kept)."""
        parts = urlsplit(url)
        credentials = parts.netloc.rpartition("@")[0]
        netloc = f"{credentials}@" if credentials else ""
        return urlunsplit(parts._replace(netloc=f"{netloc}{self.host}:{self.port}"))

    # -- faults ------------------------------------------------------------------------------

    def cut(self, *, reset: bool = False) -> int:
        """Close every open connection (both sides); returns how many there were."""
        with self._changed:
            links = list(self._links.values())
        for link in links:
            link.kill(reset)
        with self._changed:
            self._changed.notify_all()  # frozen pumps see their link dead and give up
        for link in links:
            for thread in link.threads:
                thread.join(_JOIN)
            if not link.record.closed.is_set():  # a pump stuck in a write: force it out
                link.kill(reset=False)
        return len(links)

    def freeze(self, timeout: float = 2.0) -> None:
        """Stop forwarding in both directions; returns once no byte is being written."""
        deadline = time.monotonic() + timeout
        with self._changed:
            self._frozen = True
            while self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{self!r}: a write did not finish within {timeout:g} s")
                self._changed.wait(remaining)

    def unfreeze(self) -> None:
        """Forward again, first what was held while frozen."""
        with self._changed:
            self._frozen = False
            self._changed.notify_all()

    @property
    def frozen(self) -> bool:
        return self._frozen

    def delay(self, seconds: float) -> None:
        """Forward each chunk ``seconds`` after it was read; 0 ends the delay."""
        if seconds < 0:
            raise ValueError(f"a delay cannot be negative: {seconds}")
        with self._changed:
            self._delay = seconds

    def trickle(self, pause: float | None = 0.001, *, direction: str = "both") -> None:
        """Forward byte by byte with ``pause`` seconds between bytes; None ends it.

        ``direction``: "up" (client to target), "down" (target to client) or "both".
        """
        if pause is not None and pause < 0:
            raise ValueError(f"a pause cannot be negative: {pause}")
        if direction not in ("up", "down", "both"):
            raise ValueError(f"direction must be up, down or both, not {direction!r}")
        with self._changed:
            for name in ("up", "down") if direction == "both" else (direction,):
                if pause is None:
                    self._trickle.pop(name, None)
                else:
                    self._trickle[name] = pause

    def refuse(self, timeout: float = 2.0) -> None:
        """Close the listening socket: new connections are refused. Open ones stay."""
        self._set_listening(False, timeout)

    def accept(self, timeout: float = 2.0) -> None:
        """Listen again on the same port after ``refuse()``."""
        self._set_listening(True, timeout)

    def _set_listening(self, listening: bool, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            self._want_listening = listening
            self._changed.notify_all()
            while self._listening is not listening:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{self!r}: listening={listening} not reached in time")
                self._changed.wait(remaining)

    # -- observing ---------------------------------------------------------------------------

    @property
    def open_connections(self) -> int:
        with self._changed:
            return len(self._links)

    @property
    def accepted(self) -> int:
        """Connections accepted so far (and forwarded to a target that answered)."""
        with self._changed:
            return len(self.records)

    def wait_for_accepted(self, count: int, timeout: float = 10.0) -> LinkRecord:
        """Wait until ``count`` connections were accepted in all; returns the last one's record."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.records) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{self!r}: fewer than {count} connections in {timeout:g} s")
                self._changed.wait(remaining)
            return self.records[count - 1]

    def wait_until_idle(self, timeout: float = 10.0) -> bool:
        """Wait until no connection is open (both peers closed theirs); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._links:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
            return True

    # -- the accept thread -------------------------------------------------------------------

    def _listen(self) -> socket.socket:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self.host, self.port))
            listener.listen(64)
        except BaseException:
            listener.close()
            raise
        return listener

    def _accept_loop(self) -> None:
        listener = self._listener
        try:
            while True:
                with self._changed:
                    if self._stopping:
                        return
                    want = self._want_listening
                if want and listener is None:
                    try:
                        listener = self._listen()
                    except OSError:  # the port is taken for now: accept() times out
                        with self._changed:
                            self._changed.wait(_POLL)
                        continue
                    self._set_state(listening=True)
                elif not want and listener is not None:
                    listener.close()
                    listener = None
                    self._set_state(listening=False)
                if listener is None:
                    with self._changed:
                        self._changed.wait(_POLL)
                    continue
                readable, _, _ = select.select([listener], [], [], _POLL)
                if readable:
                    client, _ = listener.accept()
                    self._open_link(client)
        finally:
            if listener is not None:
                listener.close()
            self._set_state(listening=False)

    def _set_state(self, *, listening: bool) -> None:
        with self._changed:
            self._listening = listening
            self._changed.notify_all()

    def _open_link(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=_UPSTREAM_CONNECT)
        except OSError:
            # The target is down: reset the client's connection at once.
            with contextlib.suppress(OSError):
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.close()
            return
        for sock in (client, upstream):
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            address = client.getpeername()
        except OSError:  # the client left already; its pumps will find out
            address = ("", 0)
        with self._changed:
            if self._stopping:
                client.close()
                upstream.close()
                return
            number = next(self._numbers)
            record = LinkRecord(number, client_address=address)
            link = _Link(number, client, upstream, record)
            for name, source, sink, kept in (
                ("up", client, upstream, record.up),
                ("down", upstream, client, record.down),
            ):
                link.threads.append(
                    threading.Thread(
                        target=self._pump,
                        args=(link, name, source, sink, kept),
                        name=f"faultproxy-{self.port}-{number}-{name}",
                        daemon=True,
                    )
                )
            self._links[number] = link
            self.records.append(record)
            self._link_threads += link.threads
            for thread in link.threads:  # under the lock: cut() joins only started pumps
                thread.start()
            self._changed.notify_all()

    # -- the pumps ---------------------------------------------------------------------------

    def _pump(
        self,
        link: _Link,
        direction: str,
        source: socket.socket,
        sink: socket.socket,
        kept: bytearray,
    ) -> None:
        clean = False
        try:
            while True:
                data = source.recv(_CHUNK)
                read_at = time.monotonic()
                if data and source is link.client:
                    link.record.client_spoke.set()
                if not self._forward(link, direction, sink, data, read_at, kept):
                    break
                if not data:
                    clean = True  # the end of stream was passed on: the other pump goes on
                    break
        except OSError:
            pass
        finally:
            if not clean and not link.dead.is_set():
                link.kill(reset=False)  # a failure: end the other direction too
            if link.pump_ended():
                with self._changed:
                    self._links.pop(link.number, None)
                    self._changed.notify_all()

    def _forward(
        self,
        link: _Link,
        direction: str,
        sink: socket.socket,
        data: bytes,
        read_at: float,
        kept: bytearray,
    ) -> bool:
        """Pass ``data`` (b"": the end of stream) on, honouring the faults; False once cut."""
        with self._changed:
            delay, pause = self._delay, self._trickle.get(direction)
        if delay and link.dead.wait(max(read_at + delay - time.monotonic(), 0.0)):
            return False
        if pause is None or len(data) <= 1:
            pieces = [data]
        else:
            pieces = [data[i : i + 1] for i in range(len(data))]
        for index, piece in enumerate(pieces):
            if index and pause and link.dead.wait(pause):
                return False
            if not self._enter(link):
                return False
            try:
                if piece:
                    kept += piece  # first: a reader of the sink may look at once
                    sink.sendall(piece)
                else:
                    sink.shutdown(socket.SHUT_WR)
            finally:
                self._leave()
        return True

    def _enter(self, link: _Link) -> bool:
        """Wait while frozen; False when the link was cut meanwhile."""
        with self._changed:
            while self._frozen and not link.dead.is_set():
                self._changed.wait(_POLL)
            if link.dead.is_set():
                return False
            self._in_flight += 1
            return True

    def _leave(self) -> None:
        with self._changed:
            self._in_flight -= 1
            self._changed.notify_all()
