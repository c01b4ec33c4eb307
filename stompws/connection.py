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

A write waits for ``_write_lock`` at most ``write_timeout`` (the writer holding it is itself
bounded by the transport's write timeout): past that the connection is declared stuck and
aborted, so no thread, the heart-beat thread and ``disconnect()`` included, waits behind a
blocked writer for longer than its own bound. ``disconnect()`` passes its own, shorter,
deadline.

What a connection reports to its client, in order, on the reader thread: the events of each
read (after CONNECTED, the SUBSCRIBE frames repeating the previous session's subscriptions
are queued under ``lock`` before anything else can be, and the heart-beat thread starts),
then, exactly once, its end. A protocol violation is the last event of its read: the events
before it are handled first, so nothing received intact is lost.

Heart-beats: the heart-beat thread sends an EOL when nothing was written for the negotiated
interval and declares the broker dead after the tolerated silence. The reader calls user
code, so it may be busy for a long time; the broker is not blamed for that: at the deadline,
bytes the session has not seen yet (waiting unread in the socket or the TLS layer, or read
and not yet handed over) count as a sign of life, whatever the reader is doing. A
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

from .errors import BrokerError, ConnectionClosed, HeartbeatTimeout, ProtocolError
from .handles import Outcome, Receipt
from .protocol import (
    HEARTBEAT_BYTES,
    ClientProtocol,
    Connected,
    Event,
    Lost,
    Outgoing,
    ProtocolViolation,
)
from .transport import Transport
from .wirelog import HEARTBEATS, WIRE, log_received, log_sent

__all__ = ["ConnectAttempt", "Connection", "ConnectionHandler"]

logger = logging.getLogger("stompws.connection")
_numbers = itertools.count(1)


class ConnectAttempt(Outcome):
    """The connecting thread's view of one attempt: its CONNECTED frame, or why not."""


class ConnectionHandler(Protocol):
    """What a connection reports to its client; every call comes without a lock held."""

    def connection_events(self, connection: Connection, events: list[Event]) -> None: ...

    def connection_heartbeat_timeout(self, connection: Connection) -> None: ...

    def connection_lost(
        self, connection: Connection, reason: BaseException | None, lost: Lost
    ) -> None: ...


class Connection:
    def __init__(
        self,
        transport: Transport,
        protocol: ClientProtocol,
        handler: ConnectionHandler,
        *,
        write_timeout: float = 10.0,
    ) -> None:
        self.transport = transport
        self.protocol = protocol
        self.number = next(_numbers)
        self.write_timeout = write_timeout
        self.lock = threading.Lock()
        self.ended = threading.Event()  # set once the end has been reported
        self.reason: BaseException | None = None
        self.ending_requested = False  # disconnect() asked for the end: it is no failure
        # The RECEIPT handles waiting on this connection, by receipt id: the session says
        # which receipts are pending; this only maps them to their handles (under ``lock``).
        self.receipts: dict[str, Receipt] = {}
        # The last ERROR the broker sent, while it may still be why the broker closes: see
        # ``Client.connection_lost``. ``error_mark`` is how many frames had been queued when
        # it arrived; ``error_at`` when (monotonic clock).
        self.unanswered_error: BrokerError | None = None
        self.error_mark = 0
        self.error_at = 0.0
        # Receipts whose RECEIPT came while that ERROR may still be about their frame
        # (``Receipt.received_in_doubt``); settled by what the broker does next.
        self.doubted: list[Receipt] = []
        # The receipts of the SUBSCRIBE frames that repeated the previous connection's
        # subscriptions, in the order they were sent (``Client.connection_lost``).
        self.resubscriptions: list[Receipt] = []
        self._handler = handler
        self._end_reason: BaseException | None = None
        self.reader_thread = threading.Thread(
            target=self._read_loop, name=f"stompws-reader-{self.number}", daemon=True
        )
        self.heartbeat_thread: threading.Thread | None = None
        self.attempt = ConnectAttempt()  # resolved by its CONNECTED, ERROR or end
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

    @property
    def closing(self) -> bool:
        """Ended, or asked to end: a reader waiting for buffer room stops waiting."""
        return self.ending_requested or self._end_reason is not None or self.ended.is_set()

    # -- writing ---------------------------------------------------------------------------

    def perform(
        self, build: Callable[[ClientProtocol], Outgoing], deadline: float | None = None
    ) -> Outgoing:
        """Build a frame with the session and queue it, as one step under ``lock``; then
        write it (module docstring) and return once it is on the wire.

        ``build`` may raise (``UsageError``, ``NotConnected``): then nothing is written.
        A failed write ends the connection and raises ``ConnectionClosed``; so does a write
        that cannot start before ``deadline`` (default: ``write_timeout`` from now).
        """
        with self.lock:
            outgoing = build(self.protocol)
            ticket = self._enqueue(outgoing.data)
            if WIRE.isEnabledFor(logging.DEBUG):  # under the lock: logged in wire order
                log_sent(self, (outgoing.frame,))
        self._flush(ticket, deadline)
        return outgoing

    @property
    def next_ticket(self) -> int:
        """The ticket the next frame queued will get (read under ``lock``)."""
        return self._queued + 1

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

    def _flush(self, ticket: int, deadline: float | None = None) -> None:
        """Return once the frame with ``ticket`` is written, by this thread or another."""
        if deadline is None:
            # Every frame queued before ours may take up to write_timeout (the transport's
            # bound for one write): past all of that, the writer is stuck for good.
            ahead = max(ticket - self._written, 1)
            start_by = time.monotonic() + self.write_timeout * ahead
        else:
            start_by = deadline
        if not self._write_lock.acquire(timeout=max(start_by - time.monotonic(), 0.0)):
            error = ConnectionClosed(
                f"write to {self.transport.endpoint.url} did not start in time: another "
                "write is blocked (the broker stopped reading); the connection was aborted"
            )
            self.abort(error)
            raise error
        try:
            if self._written < ticket:
                self._write_queued(deadline)
        finally:
            self._write_lock.release()

    def _write_queued(self, deadline: float | None = None) -> None:
        """Write every queued frame, in order (under ``_write_lock``); each write is
        bounded by ``write_timeout`` and, when given, by ``deadline``."""
        if self._write_failed is not None:
            raise ConnectionClosed(str(self._write_failed)) from self._write_failed
        queue, send = self._queue, self.transport.send
        try:
            # Only what is queued now (this thread's frame is): a writer that also took
            # frames queued while it writes could be kept writing for others for ever.
            for _ in range(len(queue)):
                left = None if deadline is None else max(deadline - time.monotonic(), 0.001)
                send(queue.popleft(), left)  # popleft is atomic; appends only add behind
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
        connection's threads to finish. Skipped: the calling thread, a thread never
        started, and the heart-beat thread when called from the reader (it ends only once
        the reader has reported the end)."""
        current = threading.current_thread()
        for thread in (self.reader_thread, self.heartbeat_thread):
            if thread is None or thread is current or thread.ident is None:
                continue
            if thread is self.heartbeat_thread and current is self.reader_thread:
                continue
            thread.join(max(deadline - time.monotonic(), 0.05))

    def end_gracefully(self, deadline: float | None = None) -> None:
        """Ask the broker to close (after DISCONNECT): a WebSocket close, a TCP half-close."""
        self.ending_requested = True
        if deadline is None:
            deadline = time.monotonic() + self.write_timeout
        if not self._write_lock.acquire(timeout=max(deadline - time.monotonic(), 0.0)):
            self.abort()
            return
        try:
            self._write_queued(deadline)  # what was queued before goes out before the close
            self.transport.close_gracefully()
        except ConnectionClosed:
            return  # the reader reports the end
        finally:
            self._write_lock.release()

    # -- the reader ------------------------------------------------------------------------

    def _read_loop(self) -> None:
        reason: BaseException | None = None
        try:
            while True:
                data = self.transport.recv()
                now = time.monotonic()
                with self.lock:
                    events = self.protocol.receive_data(data, now)
                    self.transport.read_handled()
                    if HEARTBEATS.isEnabledFor(logging.DEBUG) or WIRE.isEnabledFor(logging.DEBUG):
                        log_received(self, events)
                    tickets = self._after_connected(events)
                for ticket in tickets:
                    self._flush(ticket)
                if events:
                    violation = events[-1]
                    if type(violation) is ProtocolViolation:
                        logger.error("%r: %s", self, violation.error)
                        self._dispatch(events[:-1], now)
                        reason = violation.error
                        break
                    self._dispatch(events, now)
        except (ConnectionClosed, ProtocolError) as error:  # ProtocolError: WebSocket framing
            reason = error
        except Exception as error:  # a bug of ours: report it as the end, never hang
            logger.exception("%r: reader failed", self)
            reason = error
        except BaseException as error:  # SystemExit or KeyboardInterrupt from a listener
            logger.error("%r: a listener raised %r; the connection ends", self, error)
            reason = ConnectionClosed(f"a listener raised {error!r}; the connection was ended")
            reason.__cause__ = error
        finally:
            self._finish(reason)

    def _after_connected(self, events: list[Event]) -> list[int]:
        """Under ``lock``: once CONNECTED arrived, queue the resubscriptions before any
        other frame can be built; start heart-beating."""
        for event in events:
            if type(event) is Connected:
                resubscriptions = self.protocol.resubscribe_all()
                tickets = [self._enqueue(o.data) for o in resubscriptions]
                for outgoing, ticket in zip(resubscriptions, tickets, strict=True):
                    self._await_resubscription(outgoing, ticket)
                if resubscriptions and WIRE.isEnabledFor(logging.DEBUG):
                    log_sent(self, (o.frame for o in resubscriptions))
                self._start_heartbeats()
                return tickets
        return []

    def _await_resubscription(self, outgoing: Outgoing, ticket: int) -> None:
        """Under ``lock``: a handle for the resubscription's receipt, nobody waits on it. A
        refusal then ends that subscription alone, as for a caller's SUBSCRIBE with a
        receipt, whether the ERROR names the receipt (ActiveMQ) or comes just before it,
        followed by the close (RabbitMQ)."""
        if outgoing.receipt_id is None:  # pragma: no cover - resubscribe_all asks for one
            return
        receipt = Receipt(
            outgoing.receipt_id,
            "SUBSCRIBE",
            self,
            self.write_timeout,
            outgoing.frame.headers["id"],
        )
        receipt.ticket = ticket
        self.receipts[outgoing.receipt_id] = receipt
        self.resubscriptions.append(receipt)

    def _dispatch(self, events: list[Event], now: float) -> None:
        self._handler.connection_events(self, events)

    def _finish(self, reason: BaseException | None) -> None:
        if self._end_reason is not None:
            reason = self._end_reason
        if self.ending_requested and not isinstance(reason, ProtocolError):
            reason = None
        with self.lock:
            lost = self.protocol.connection_lost()
        # Never close the socket under a writer; a writer is bounded by its write timeout,
        # and the abort below wakes it at once where the transport allows.
        self.transport.abort()
        with self._write_lock:
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

    def _start_heartbeats(self) -> None:
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
                        HEARTBEATS.debug("%r >>> heart-beat", self)
                    beat_at = protocol.next_heartbeat_at()
                    deadline = protocol.silence_deadline()
                    if deadline is not None and now > deadline and self._spoke_unheard():
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

    def _spoke_unheard(self) -> bool:
        """Whether the broker sent bytes the session has not seen yet: waiting unread (a
        listener holds the reader, or the reader is between two reads) or read and not yet
        handed over; the transport answers under the lock its reads take, so no bytes slip
        between the two. Either way the broker is alive, whatever the session's clock says.
        Counting waiting bytes only while a listener ran called a beating broker dead when
        the deadline fell between a dispatch and the next read, and a flag set after the
        read left a bytecode-wide gap that a loaded machine found (3 in 30 runs of a
        slow-listener test with 3 busy threads)."""
        return self.transport.readable_now()

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
