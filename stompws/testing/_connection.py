"""One client connection of the embedded broker: a reader loop and a writer thread.

The reader (a thread of the TCP listener, or the WebSocket server's handler thread) reads
bytes, parses them with the project's ``FrameParser`` and hands each frame to the session
under the broker's lock. Everything the broker says goes through the connection's outbox to
its writer thread, the only thread that writes: so no lock is held while a socket write
blocks, frames leave in the order they were queued, and the fault hooks (delay, silence,
no heart-beats) sit in one place.

The writer also keeps time: it sends a heart-beat when nothing was written for the agreed
interval, and ends a connection whose client has been silent for longer than the tolerance.

Ending, in one of two ways:

* graceful (after ERROR, DISCONNECT, a heart-beat timeout, ``Broker.stop``): the writer
  sends what was queued, then a WebSocket close or a TCP half-close, and waits up to
  ``_LINGER`` seconds for the client to close its side before cutting the connection;
* abrupt (``drop_connections``, or when the graceful end takes too long): the socket is
  shut down under the reader and writer, which wakes both at once.

Either way the reader ends the session (unacked messages go back to their queues), joins the
writer and releases the socket, in that order.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Final, Protocol

from ..errors import ProtocolError, UsageError
from ..frame import Frame
from ..parser import FrameParser
from ._hub import ConnectionInfo, Hub
from ._session import CLOSE_NORMAL, CLOSE_POLICY, ServerSession

__all__ = ["Connection", "Transport", "TransportClosed"]

logger = logging.getLogger("stompws.testing")

_LINGER: Final = 1.0  # seconds a closing connection waits for the client to close its side
_TICK: Final = 1.0  # the writer looks at the clock at least this often
_BATCH: Final = 64  # frames joined into one write on TCP


class TransportClosed(Exception):
    """A write failed: the connection is gone."""


class Transport(Protocol):
    kind: str  # "tcp" or "ws"
    peer: str
    subprotocol: str | None

    def recv(self) -> bytes | None:
        """Received bytes, or None once the connection is closed or broken."""

    def send(self, chunks: list[bytes]) -> None:
        """Write frames in order (one WebSocket message each); raises ``TransportClosed``."""

    def close_gracefully(self, code: int, reason: str) -> None:
        """A WebSocket close handshake or a TCP half-close; never raises."""

    def abort(self) -> None:
        """Shut the socket down from any thread, waking a blocked read or write."""

    def bound_writes(self, seconds: float) -> None:
        """Make every later write fail (``TransportClosed``) once it makes no progress for
        ``seconds``; never raises."""

    def release(self) -> None:
        """Free the socket; called last, by the reader."""


def _size(frame: Frame) -> int:
    """What a frame weighs in the outbox: its body and headers (an estimate, in bytes)."""
    return (
        len(frame.body)
        + len(frame.command)
        + sum(len(k) + len(v) + 2 for k, v in frame.header_list)
    )


class _Raw:
    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


class _Close:
    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason


_STOP: Final = _Close(CLOSE_NORMAL, "")  # the reader ended: flush, close, return
_NUDGE: Final = _Raw(b"")  # wakes the writer to look at the clock and the faults again
_Item = Frame | _Raw | _Close


class Connection:
    def __init__(self, hub: Hub, transport: Transport, number: int) -> None:
        self.hub = hub
        self.transport = transport
        self.number = number
        self.session = ServerSession(hub, self)
        self.parser = FrameParser("1.2", max_frame_size=hub.settings.max_frame_size)
        self.version: str | None = None  # what the writer encodes for
        self.reader_thread: threading.Thread | None = None
        self.extra_threads: list[threading.Thread] = []  # joined by Broker.stop
        self.writer_thread = threading.Thread(
            target=self._write_loop, name=f"stompws-testbroker-writer-{number}", daemon=True
        )
        self.input_ended = threading.Event()
        self.ended = threading.Event()
        self._outbox: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._closing = False
        self._cut = threading.Event()  # aborted: the writer stops at once
        self._send_interval: float | None = None
        self._expect_within: float | None = None  # silence tolerated from the client
        self.last_received = time.monotonic()
        self.last_sent = time.monotonic()
        self.opened = time.monotonic()  # the CONNECT deadline counts from here
        self.admitted = False  # registered with the hub (under its connection cap)
        # Bytes of frames queued and not yet taken by the writer; guarded by the hub's lock
        # on the way in, by _size_lock on the way out (the writer does not take the hub's).
        self._queued = 0
        self._size_lock = threading.Lock()
        self._overflowed = False
        self._writing = False  # the writer is inside transport.send (it may block there)

    def __repr__(self) -> str:
        return f"<testbroker connection {self.number} {self.transport.kind} {self.transport.peer}>"

    def info(self) -> ConnectionInfo:
        session = self.session
        return ConnectionInfo(
            number=self.number,
            transport=self.transport.kind,
            peer=self.transport.peer,
            session=session.session_id if session.connected else None,
            version=session.version if session.connected else None,
            login=session.login,
            subprotocol=self.transport.subprotocol,
        )

    @property
    def closing(self) -> bool:
        """Whether the broker has begun to end this connection."""
        return self._closing

    def finished(self) -> bool:
        return self.ended.is_set() and not any(t.is_alive() for t in self.threads())

    def threads(self) -> list[threading.Thread]:
        threads = [self.writer_thread, *self.extra_threads]
        if self.reader_thread is not None:
            threads.append(self.reader_thread)
        return threads

    # -- the Link a session talks to (called with the broker's lock held; never blocks) ----

    def send(self, frame: Frame) -> None:
        if self._overflowed:
            return
        size = _size(frame)
        with self._size_lock:
            self._queued += size
            queued = self._queued
        limit = self.hub.settings.max_outbox_bytes
        if queued <= limit or queued == size:  # one frame alone is never too much
            self._outbox.put(frame)
            return
        self._overflow(queued, limit)

    def _overflow(self, queued: int, limit: int) -> None:
        # A consumer that does not read: disconnect it rather than hold back producers
        # (they share the broker's lock, so one stalled consumer would stall everyone) or
        # grow without limit. The backlog is dropped at once; unacknowledged messages go
        # back to their queues when the session ends.
        self._overflowed = True
        logger.warning(
            "%r: slow consumer: %d bytes waiting to be written (limit %d): disconnecting",
            self,
            queued,
            limit,
        )
        while True:
            try:
                self._outbox.get_nowait()
            except queue.Empty:
                break
        with self._size_lock:
            self._queued = 0
        self._closing = True
        error = Frame(
            "ERROR",
            [("message", "slow consumer"), ("content-type", "text/plain")],
            f"more than {limit} bytes waited to be sent to this client: it does not read",
        )
        # The ERROR is only worth a short wait: past it the peer is cut without one.
        self.transport.bound_writes(self.hub.settings.close_timeout)
        self._outbox.put(error)
        self._outbox.put(_Close(CLOSE_POLICY, "slow consumer"))
        if self._writing:
            # The writer is blocked on a peer that stopped reading: the ERROR cannot get
            # past the bytes already in the socket, so waiting for it would hold the
            # connection (and its threads) for as long as the peer likes.
            self.abort()

    def close(self, code: int, reason: str) -> None:
        if not self._closing:
            logger.info("%r closing: %s", self, reason)
        self._closing = True
        self._outbox.put(_Close(code, reason))

    def negotiated(self, version: str, send_ms: int, expect_ms: int) -> None:
        self.version = version
        self.parser.version = version
        self._send_interval = send_ms / 1000.0 if send_ms else None
        tolerance = self.hub.settings.heartbeat_tolerance
        self._expect_within = expect_ms / 1000.0 * tolerance if expect_ms else None
        self.last_received = time.monotonic()
        logger.info(
            "%r: %s, STOMP %s, login %r, heart-beats out %s ms / in %s ms",
            self,
            self.session.session_id,
            version,
            self.session.login,
            send_ms,
            expect_ms,
        )

    # -- what the broker's hooks call (any thread) -----------------------------------------

    def send_raw(self, data: bytes) -> None:
        self._outbox.put(_Raw(bytes(data)))

    def nudge(self) -> None:
        self._outbox.put(_NUDGE)

    def abort(self) -> None:
        self._closing = True
        self._cut.set()
        self.transport.abort()
        self._outbox.put(_STOP)

    # -- the reader ------------------------------------------------------------------------

    def run(self) -> None:
        """Serve the connection on the calling thread until it ends."""
        refused = None if self.admitted else self.admit()
        if refused is not None:
            logger.info("%r refused: %s", self, refused)
            self.transport.abort()
            self.transport.release()
            self.ended.set()
            return
        logger.info("%r opened", self)
        self.writer_thread.start()
        try:
            while True:
                data = self.transport.recv()
                if data is None:
                    break
                self.last_received = time.monotonic()
                if not self._closing:
                    self._take(data)
        except Exception:  # a bug of ours: log it and end the connection, never hang
            logger.exception("%r: reader failed", self)
        finally:
            self._finish()

    def _take(self, data: bytes) -> None:
        if not self.session.connected:
            # Until CONNECT is handled the version is unknown, so frames that follow it in
            # the same read are held back (cut after each NUL) and parsed only once the
            # version is set: their header escapes depend on it.
            start = 0
            while start < len(data) and not self.session.connected and not self._closing:
                nul = data.find(b"\x00", start)
                end = len(data) if nul < 0 else nul + 1
                self._feed(data[start:end])
                start = end
            data = data[start:]
            if not data or self._closing:
                return
        self._feed(data)

    def _feed(self, data: bytes) -> None:
        try:
            items = self.parser.feed(data)
            error = None
        except ProtocolError as failure:
            items = failure.frames
            error = failure
        session = self.session
        with self.hub.lock:
            for item in items:
                if isinstance(item, Frame):
                    session.handle(item)
                    if session.ended:
                        return
            if error is not None:
                session.fail("malformed frame", str(error))

    def admit(self) -> str | None:
        """Register with the hub; why not, when it is stopping or full."""
        refused = self.hub.register(self)
        self.admitted = refused is None
        return refused

    def _finish(self) -> None:
        self.input_ended.set()
        with self.hub.lock:
            self.session.end()
        self._outbox.put(_STOP)
        settings = self.hub.settings
        self.writer_thread.join(settings.close_timeout + _LINGER + 1.0)
        if self.writer_thread.is_alive():
            self.transport.abort()
            self.writer_thread.join(1.0)
        self.transport.release()
        self.hub.unregister(self)
        logger.info("%r closed", self)
        self.ended.set()

    # -- the writer ------------------------------------------------------------------------

    def _write_loop(self) -> None:
        pending: list[bytes] = []
        try:
            while not self._cut.is_set():
                if pending:
                    try:
                        item: _Item = self._outbox.get_nowait()
                    except queue.Empty:
                        self._write(pending)
                        continue
                else:
                    now = time.monotonic()
                    self._keep_time(now)
                    try:
                        item = self._outbox.get(timeout=self._wait_time(now))
                    except queue.Empty:
                        continue
                if isinstance(item, _Close):
                    if not self._cut.is_set():
                        self._write(pending)
                        self._end(item)
                    return
                if item is _NUDGE:
                    continue
                faults = self.hub.faults
                if isinstance(item, Frame):
                    with self._size_lock:
                        self._queued = max(self._queued - _size(item), 0)
                    delay = faults.delay
                    if delay > 0:
                        self._write(pending)
                        if self._cut.wait(delay):
                            return
                    data = self._encode(item)
                else:
                    data = item.data
                if faults.silent:
                    continue
                pending.append(data)
                if len(pending) >= _BATCH or faults.delay > 0:
                    self._write(pending)
        except TransportClosed as error:
            logger.debug("%r: write failed: %s", self, error)
            self.abort()
        except Exception:  # a bug of ours: log it and cut the connection, never hang
            logger.exception("%r: writer failed", self)
            self.abort()

    def _write(self, pending: list[bytes]) -> None:
        if pending:
            self._writing = True
            try:
                self.transport.send(pending)
            finally:
                self._writing = False
            self.last_sent = time.monotonic()
            pending.clear()

    def _keep_time(self, now: float) -> None:
        if self._closing:
            return
        connect_timeout = self.hub.settings.connect_timeout
        if not self.session.connected and now - self.opened > connect_timeout:
            # A peer that sends nothing, or never finishes its CONNECT, would otherwise
            # hold a socket and two or three threads for as long as it likes.
            with self.hub.lock:
                self.session.fail(
                    "CONNECT timeout",
                    f"no complete CONNECT frame within {connect_timeout:g} s",
                    code=CLOSE_POLICY,
                )
            return
        if self._expect_within is not None and now - self.last_received > self._expect_within:
            with self.hub.lock:
                self.session.fail(
                    "heart-beat timeout",
                    f"nothing received from the client for {now - self.last_received:.1f} s "
                    f"(tolerance {self._expect_within:g} s)",
                    code=CLOSE_NORMAL,
                )
            return
        faults = self.hub.faults
        if (
            self._send_interval is not None
            and now - self.last_sent >= self._send_interval
            and not faults.heartbeats_stopped
            and not faults.silent
        ):
            self.transport.send([b"\n"])
            self.last_sent = now

    def _wait_time(self, now: float) -> float:
        wakes = [now + _TICK]
        if not self.session.connected:
            wakes.append(self.opened + self.hub.settings.connect_timeout + 0.001)
        faults = self.hub.faults
        if self._send_interval is not None and not (faults.heartbeats_stopped or faults.silent):
            wakes.append(self.last_sent + self._send_interval)
        if self._expect_within is not None:
            wakes.append(self.last_received + self._expect_within + 0.001)
        return max(min(wakes) - now, 0.001)

    def _encode(self, frame: Frame) -> bytes:
        version = self.version or "1.0"
        try:
            return frame.encode(version)
        except UsageError:
            # A header this version cannot carry, such as a line break a 1.2 sender put in
            # a header for a 1.0 subscriber: leave that header out rather than the message.
            kept = []
            for pair in frame.header_list:
                try:
                    Frame(frame.command, [pair]).encode(version)
                except UsageError:
                    logger.warning(
                        "%r: header %r dropped: STOMP %s cannot carry it", self, pair[0], version
                    )
                    continue
                kept.append(pair)
            return Frame(frame.command, kept, frame.body).encode(version)

    def _end(self, close: _Close) -> None:
        self._closing = True
        self.transport.close_gracefully(close.code, close.reason)
        if not self.input_ended.wait(_LINGER):
            self.transport.abort()
