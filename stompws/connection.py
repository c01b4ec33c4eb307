"""One live connection: a transport, its STOMP session, a reader thread and a heart-beat thread.

The reader thread owns the socket: it reads, feeds the session, hands the events to the
client (which calls the listeners, on this thread, with no lock held), and when the
connection ends for any reason it closes the socket and reports the end exactly once.

One lock (``lock``) guards the session: a frame is built, registered (receipt, subscription,
transaction) and put in the write queue as one step, so the queue's order is the session's
view of it. The sending thread then writes the queue under a second lock (``_write_lock``)
and returns once its own frame is on the wire, or raises ``ConnectionClosed``; frames never
interleave, and the wire order is the queue's. The socket write happens outside ``lock`` on
purpose: a broker that stops reading from us while its own writes to us are blocked
(RabbitMQ does, under flow control) would otherwise stop our reader too, which needs
``lock`` for every frame it receives: both sides would wait until the write timeout. A
writer also writes the frames that other threads queued before it, in order. (Writing
those in one socket write was measured and not kept: no gain, see benchmarks/RESULTS.md.)

Heart-beats: the heart-beat thread sends an EOL when nothing was written for the negotiated
interval and declares the broker dead after the tolerated silence. The reader calls user
code, so it may be busy for a long time; the broker is not blamed for that: while the reader
is inside a callback, bytes waiting unread in the socket count as a sign of life. A
separate dispatch thread would have cost a thread hop per message, and bounded buffering
would stall the reader all the same.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from .errors import ConnectionClosed, HeartbeatTimeout, ProtocolError
from .protocol import HEARTBEAT_BYTES, ClientProtocol, Event, Lost, Outgoing
from .transport import Transport

__all__ = ["Connection", "ConnectionHandler"]

logger = logging.getLogger("stompws.connection")
_numbers = itertools.count(1)


class ConnectionHandler(Protocol):
    """What a connection reports to its client; every call comes without a lock held."""

    def connection_events(self, connection: Connection, events: list[Event]) -> None: ...

    def connection_heartbeat_timeout(self, connection: Connection) -> None: ...

    def connection_lost(
        self, connection: Connection, reason: BaseException | None, lost: Lost
    ) -> None: ...


class Connection:
    def __init__(
        self, transport: Transport, protocol: ClientProtocol, handler: ConnectionHandler
    ) -> None:
        self.transport = transport
        self.protocol = protocol
        self.number = next(_numbers)
        self.lock = threading.Lock()
        self.ended = threading.Event()  # set once the end has been reported
        self.reason: BaseException | None = None
        self.ending_requested = False  # disconnect() asked for the end: it is no failure
        self._handler = handler
        self._end_reason: BaseException | None = None
        self._busy_since: float | None = None  # the reader is in user code since then
        self.reader_thread = threading.Thread(
            target=self._read_loop, name=f"stompws-reader-{self.number}", daemon=True
        )
        self.heartbeat_thread: threading.Thread | None = None
        self.acker: object = None  # set by the client: what frame.ack() calls
        # The write queue (module docstring). Appended to under ``lock``, emptied under
        # ``_write_lock``; a frame's ticket is its number in the order of queueing.
        self._write_lock = threading.Lock()
        self._queue: deque[bytes] = deque()
        self._queued = 0  # tickets handed out (under lock)
        self._written = 0  # frames written so far (under _write_lock)
        self._write_failed: ConnectionClosed | None = None  # under _write_lock

    def __repr__(self) -> str:
        return f"<Connection {self.number} {self.transport.endpoint.url}>"

    def start(self) -> None:
        self.reader_thread.start()

    @property
    def on_reader_thread(self) -> bool:
        return threading.current_thread() is self.reader_thread

    # -- writing ---------------------------------------------------------------------------

    def perform(self, build: Callable[[ClientProtocol], Outgoing]) -> Outgoing:
        """Build a frame with the session and queue it, as one step under ``lock``; then
        write it (module docstring) and return once it is on the wire.

        ``build`` may raise (``UsageError``, ``NotConnected``): then nothing is written.
        A failed write ends the connection and raises ``ConnectionClosed``.
        """
        with self.lock:
            outgoing = build(self.protocol)
            ticket = self._enqueue(outgoing.data)
        self._flush(ticket)
        return outgoing

    def _enqueue(self, data: bytes) -> int:
        """Queue ``data`` (under ``lock``); its ticket for ``_flush``."""
        if self.ended.is_set():
            raise ConnectionClosed("the connection has ended")
        self._queue.append(data)
        self._queued += 1
        # Counted as sent now: it goes out before this thread returns, or the connection
        # ends; either way no heart-beat is needed in between.
        self.protocol.note_sent(time.monotonic())
        return self._queued

    def _flush(self, ticket: int) -> None:
        """Return once the frame with ``ticket`` is written, by this thread or another."""
        with self._write_lock:
            if self._written < ticket:
                self._write_queued()

    def _write_queued(self) -> None:
        """Write every queued frame, in order (under ``_write_lock``)."""
        if self._write_failed is not None:
            raise ConnectionClosed(str(self._write_failed)) from self._write_failed
        queue, send = self._queue, self.transport.send
        try:
            # Only what is queued now (this thread's frame is): a writer that also took
            # frames queued while it writes could be kept writing for others for ever.
            for _ in range(len(queue)):
                send(queue.popleft())  # popleft is atomic; appends only add behind
                self._written += 1
        except ConnectionClosed as error:
            self._write_failed = error
            self.abort(error)
            raise

    def abort(self, reason: BaseException | None = None) -> None:
        """End the connection from any thread; the reader wakes, closes and reports ``reason``."""
        if self._end_reason is None:
            self._end_reason = reason
        self.transport.abort()

    def join(self, deadline: float) -> None:
        """Wait (until ``deadline`` on the monotonic clock, at least briefly) for the
        connection's threads to finish; the calling thread is skipped."""
        for thread in (self.reader_thread, self.heartbeat_thread):
            if thread is not None and thread is not threading.current_thread():
                thread.join(max(deadline - time.monotonic(), 0.05))

    def end_gracefully(self) -> None:
        """Ask the broker to close (after DISCONNECT): a WebSocket close, a TCP half-close."""
        self.ending_requested = True
        with self._write_lock:
            try:
                self._write_queued()  # what was queued before goes out before the close
            except ConnectionClosed:
                return  # the reader reports the end
            self.transport.close_gracefully()

    # -- the reader ------------------------------------------------------------------------

    def _read_loop(self) -> None:
        reason: BaseException | None = None
        try:
            while True:
                data = self.transport.recv()
                now = time.monotonic()
                with self.lock:
                    events = self.protocol.receive_data(data, now)
                if events:
                    self._dispatch(events, now)
        except ProtocolError as error:
            logger.error("%r: %s", self, error)
            if error.events:
                self._dispatch(error.events, time.monotonic())
            reason = error
        except ConnectionClosed as error:
            reason = error
        except Exception as error:  # a bug of ours: report it as the end, never hang
            logger.exception("%r: reader failed", self)
            reason = error
        finally:
            self._finish(reason)

    def _dispatch(self, events: list[Event], now: float) -> None:
        self._busy_since = now
        try:
            self._handler.connection_events(self, events)
        finally:
            self._busy_since = None

    def _finish(self, reason: BaseException | None) -> None:
        if self._end_reason is not None:
            reason = self._end_reason
        if self.ending_requested and not isinstance(reason, ProtocolError):
            reason = None
        with self.lock, self._write_lock:  # never close the socket under a writer
            lost = self.protocol.connection_lost()
            try:
                self.transport.close()
            except Exception:
                logger.debug("%r: close failed", self, exc_info=True)
        self.reason = reason
        try:
            self._handler.connection_lost(self, reason, lost)
        finally:
            self.ended.set()

    # -- heart-beats -----------------------------------------------------------------------

    def start_heartbeats(self) -> None:
        """Start the heart-beat thread when the session negotiated heart-beats."""
        protocol = self.protocol
        if protocol.send_interval is None and protocol.receive_timeout is None:
            return
        self.heartbeat_thread = threading.Thread(
            target=self._heartbeat_loop, name=f"stompws-heartbeat-{self.number}", daemon=True
        )
        self.heartbeat_thread.start()

    def _heartbeat_loop(self) -> None:
        protocol = self.protocol
        try:
            while not self.ended.is_set():
                now = time.monotonic()
                ticket = 0
                with self.lock:
                    if protocol.heartbeat_due(now):
                        ticket = self._enqueue(HEARTBEAT_BYTES)
                    beat_at = protocol.next_heartbeat_at()
                    deadline = protocol.silence_deadline()
                    if deadline is not None and now > deadline and self._alive_but_busy():
                        protocol.last_received = now
                        deadline = protocol.silence_deadline()
                if ticket:
                    self._flush(ticket)
                if deadline is not None and now > deadline:
                    self._declare_dead(now - protocol.last_received)
                    return
                wakes = [t for t in (beat_at, deadline) if t is not None]
                if not wakes:
                    return
                self.ended.wait(max(min(wakes) - time.monotonic(), 0.0) + 0.001)
        except ConnectionClosed:
            return  # the write failed; the reader reports the end

    def _alive_but_busy(self) -> bool:
        return self._busy_since is not None and self.transport.readable_now()

    def _declare_dead(self, silence: float) -> None:
        timeout = self.protocol.receive_timeout or 0.0
        error = HeartbeatTimeout(
            f"{self.transport.endpoint.url} sent nothing for {silence:.1f} s "
            f"(heart-beat tolerance {timeout:g} s)"
        )
        logger.warning("%r: %s", self, error)
        try:
            self._handler.connection_heartbeat_timeout(self)
        finally:
            self.abort(error)
