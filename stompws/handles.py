"""What the client hands back: Receipt, Subscription, Transaction and Message.

Each depends on a narrow protocol, not on ``Client``. Every wait here has a timeout, and a
wait that only the reader thread could satisfy is refused on the reader thread itself (inside
a listener) with ``UsageError``, instead of deadlocking.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Final, Protocol

from .errors import NotConnected, ReceiptTimeout, ReceiveTimeout, StompError, UsageError
from .frame import Frame, Headers

__all__ = [
    "DEFAULT_MAX_BUFFERED",
    "DEFAULT_MAX_BUFFERED_BYTES",
    "OVERFLOW_POLICIES",
    "Message",
    "Outcome",
    "Receipt",
    "Subscription",
    "Transaction",
]

logger = logging.getLogger("stompws.client")

DEFAULT_MAX_BUFFERED = 1000
DEFAULT_MAX_BUFFERED_BYTES = 64 * 1024 * 1024
OVERFLOW_POLICIES: Final = ("block", "drop-oldest")
_POLL = 0.25  # a blocked reader re-checks its connection this often (seconds)


class ReaderAware(Protocol):
    """The connection a handle belongs to, as far as a handle needs to know it."""

    @property
    def on_reader_thread(self) -> bool: ...

    @property
    def closing(self) -> bool: ...


class Outcome:
    """Settled once, by a frame or by an error: whichever comes first wins."""

    def __init__(self) -> None:
        self.settled = threading.Event()
        self.frame: Frame | None = None
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # for waits on more than ``settled``

    def succeed(self, frame: Frame) -> bool:
        """Settle with ``frame``; False when already settled."""
        with self._lock:
            if self.settled.is_set():
                return False
            self.frame = frame
            self.settled.set()
            self._changed.notify_all()
            return True

    def fail(self, error: BaseException) -> bool:
        """Settle with ``error``; False when already settled."""
        with self._lock:
            if self.settled.is_set():
                return False
            self.error = error
            self.settled.set()
            self._changed.notify_all()
            return True


class Receipt(Outcome):
    """A pending RECEIPT; ``wait`` returns the RECEIPT frame or raises why it never came.

    It settles exactly once: by its RECEIPT, by an ERROR that names it, or by the end of
    its connection; whichever comes first.
    """

    def __init__(
        self,
        receipt_id: str,
        command: str,
        connection: ReaderAware,
        default: float,
        subscription_id: str | None = None,
    ):
        super().__init__()
        self.id = receipt_id
        self.command = command
        self.subscription_id = subscription_id  # of a SUBSCRIBE: what a refusal ends
        self.ticket = 0  # the place of its frame in the connection's write order
        self.timed_out = False  # a wait() ran out: the client may give it up when crowded
        self._connection = connection
        self._default_timeout = default
        # A RECEIPT held in doubt (``received_in_doubt``) and when it stands.
        self._doubted: Frame | None = None
        self._stands_at = 0.0

    def __repr__(self) -> str:
        state = "received" if self.frame else "failed" if self.error else "pending"
        return f"<Receipt {self.id} for {self.command}: {state}>"

    def received_in_doubt(self, frame: Frame, stands_at: float) -> None:
        """The RECEIPT came after an ERROR that named no frame, for a frame sent before that
        ERROR arrived: the ERROR may be about this frame. If the broker closes the connection
        in answer to its ERROR, ``fail`` settles this with it; otherwise the RECEIPT stands
        at ``stands_at`` (monotonic clock), or as soon as ``confirm`` is called."""
        with self._lock:
            self._doubted = frame
            self._stands_at = stands_at
            self._changed.notify_all()

    def confirm(self) -> None:
        """The doubt is over: a RECEIPT held in doubt stands."""
        if self._doubted is not None:
            self.succeed(self._doubted)

    def _settle_if_due(self) -> bool:
        """Under ``_lock``: settled, once a RECEIPT held in doubt stands."""
        doubted = self._doubted
        due = doubted is not None and time.monotonic() >= self._stands_at
        if due and not self.settled.is_set():
            self.frame = doubted
            self.settled.set()
            self._changed.notify_all()
        return self.settled.is_set()

    @property
    def done(self) -> bool:
        """Whether the receipt is settled: its RECEIPT arrived (and stands), or it failed."""
        with self._lock:
            return self._settle_if_due()

    def wait(self, timeout: float | None = None) -> Frame:
        """The RECEIPT frame. ``timeout=None`` means the client's ``receipt_timeout``.

        Raises ``ReceiptTimeout``, ``BrokerError`` (the broker answered ERROR for this
        frame) or ``ConnectionClosed`` (the connection ended before the RECEIPT came). A
        RECEIPT that came just after an ERROR naming no frame is held until the broker
        shows whether that ERROR ended the connection (at most 2 s after the ERROR): if it
        did, this raises that ERROR's ``BrokerError``.
        """
        if not self.done and self._connection.on_reader_thread:
            raise UsageError(
                "cannot wait for a RECEIPT inside a listener or callback: the reader thread "
                "that would deliver it is the one waiting; use on_receipt instead"
            )
        seconds = self._default_timeout if timeout is None else timeout
        deadline = time.monotonic() + seconds
        with self._changed:
            while not self._settle_if_due():
                now = time.monotonic()
                if now >= deadline:
                    self.timed_out = True
                    raise ReceiptTimeout(self._late(seconds))
                doubted = self._doubted is not None
                self._changed.wait((min(deadline, self._stands_at) if doubted else deadline) - now)
        if self.error is not None:
            raise self.error
        assert self.frame is not None  # set before settled
        return self.frame

    def _late(self, seconds: float) -> str:
        if self._doubted is not None:
            return (
                f"RECEIPT {self.id} for {self.command} came after an ERROR that named no "
                f"frame, and within {seconds:g} s the broker did not show whether that ERROR "
                "was about this frame"
            )
        return f"no RECEIPT {self.id} for {self.command} within {seconds:g} s"


class SubscriptionOwner(Protocol):
    def unsubscribe(
        self,
        subscription: Subscription | str,
        *,
        receipt: bool | str = False,
        headers: Headers | None = None,
    ) -> Receipt | None: ...

    def refuse_on_reader(self, what: str) -> None: ...


class Subscription:
    """A live subscription.

    Its messages go to the listeners' ``on_message`` and to ``callback`` when one was given.
    A subscription without a callback also keeps its messages in a buffer of at most
    ``max_buffered`` frames and ``max_buffered_bytes`` bytes of bodies (a frame larger than
    that alone is still taken when the buffer is empty) for ``get()`` and iteration. When
    that buffer is full, what happens is the subscription's own ``overflow`` policy, never a
    side effect of listeners:

    * ``"block"`` (the default): the reader waits until ``get()`` makes room, so the broker
      is slowed down (TCP flow control) and nothing is lost. While it waits, bytes arriving
      count as a sign of life for the heart-beat check.
    * ``"drop-oldest"``: the oldest buffered frame is dropped, counted in ``discarded`` and
      logged (a warning for the first, then every 1000th).
    """

    def __init__(
        self,
        owner: SubscriptionOwner,
        id: str,
        destination: str,
        ack: str,
        headers: tuple[tuple[str, str], ...],
        callback: Callable[[Frame], None] | None,
        max_buffered: int,
        overflow: str = "block",
        max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES,
    ) -> None:
        if max_buffered < 1:
            raise UsageError(f"max_buffered must be at least 1, not {max_buffered}")
        if max_buffered_bytes < 1:
            raise UsageError(f"max_buffered_bytes must be at least 1, not {max_buffered_bytes}")
        if overflow not in OVERFLOW_POLICIES:
            raise UsageError(f"overflow must be one of {OVERFLOW_POLICIES}, not {overflow!r}")
        self.id = id
        self.destination = destination
        self.ack = ack
        self.headers = headers
        self.callback = callback
        self.max_buffered = max_buffered
        self.max_buffered_bytes = max_buffered_bytes
        self.overflow = overflow
        self.discarded = 0
        self._owner = owner
        self._buffer: collections.deque[Message] = collections.deque()
        self._buffered_bytes = 0
        self._condition = threading.Condition()
        self._end: BaseException | None = None  # why no more messages will come
        # Held by the reader while it hands a message over (callback or buffer), so that
        # unsubscribe() can wait for a hand-over under way: none starts after it returned.
        # Re-entrant: the reader unsubscribing from inside the callback does not wait on
        # itself.
        self.handing_over = threading.RLock()
        self._failed = False  # the end is a failure, not unsubscribe()/disconnect()

    def __repr__(self) -> str:
        return f"<Subscription {self.id} {self.destination} ack={self.ack}>"

    @property
    def active(self) -> bool:
        """True until ``unsubscribe()``, ``disconnect()`` or the failure that ended it."""
        return self._end is None

    @property
    def buffered(self) -> tuple[int, int]:
        """How many messages wait for ``get()``, and their bodies' bytes."""
        with self._condition:
            return len(self._buffer), self._buffered_bytes

    def unsubscribe(
        self, *, receipt: bool | str = False, headers: Headers | None = None
    ) -> Receipt | None:
        """``Client.unsubscribe`` for this subscription: no message reaches its callback
        or buffer once this returns; messages still buffered stay for ``get()``."""
        return self._owner.unsubscribe(self, receipt=receipt, headers=headers)

    def get(self, timeout: float | None = None) -> Message:
        """The next buffered message; waits at most ``timeout`` seconds (None: until one
        comes or the subscription ends).

        Raises ``ReceiveTimeout``; ``NotConnected`` once unsubscribed or disconnected and
        the buffer is empty; the error that ended it (``ConnectionClosed``,
        ``ReconnectFailed``...) when the subscription ended by a failure.
        """
        self._owner.refuse_on_reader("wait for a message with Subscription.get()")
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._condition:
            while not self._buffer:
                if self._end is not None:
                    raise self._end
                if deadline is None:
                    self._condition.wait()
                else:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise ReceiveTimeout(
                            f"no message on {self.destination} within {timeout:g} s"
                        )
                    self._condition.wait(remaining)
            frame = self._buffer.popleft()
            self._buffered_bytes -= len(frame.body)
            self._condition.notify_all()
            return frame

    def __iter__(self) -> Iterator[Message]:
        """Messages until ``unsubscribe()`` or ``disconnect()``; a failure raises."""
        while True:
            try:
                yield self.get()
            except NotConnected:
                if self._failed:
                    raise
                return

    # -- called by the client ----------------------------------------------------------------

    def _deliver(self, frame: Message, connection: ReaderAware) -> None:
        size = len(frame.body)
        with self._condition:
            while self._buffer and self._end is None and self._full(size):
                if self.overflow == "drop-oldest":
                    dropped = self._buffer.popleft()
                    self._buffered_bytes -= len(dropped.body)
                    self.discarded += 1
                    if self.discarded % 1000 == 1:
                        logger.warning(
                            "subscription %s (%s) dropped its oldest buffered message: "
                            "%d dropped so far (overflow='drop-oldest', max_buffered=%d, "
                            "max_buffered_bytes=%d)",
                            self.id,
                            self.destination,
                            self.discarded,
                            self.max_buffered,
                            self.max_buffered_bytes,
                        )
                    continue
                if connection.closing:
                    break
                self._condition.wait(_POLL)
            self._buffer.append(frame)
            self._buffered_bytes += size
            self._condition.notify_all()

    def _full(self, incoming: int) -> bool:
        return (
            len(self._buffer) >= self.max_buffered
            or self._buffered_bytes + incoming > self.max_buffered_bytes
        )

    def _wait_for_hand_over(self, timeout: float) -> None:
        """Wait (at most ``timeout``) until a message being handed over has been; call after
        ``_close``. From the reader itself (inside the callback) it returns at once."""
        if self.handing_over.acquire(timeout=timeout):
            self.handing_over.release()
            return
        logger.warning(
            "subscription %s (%s): its callback was still running %g s after unsubscribe()",
            self.id,
            self.destination,
            timeout,
        )

    def _close(self, error: StompError, *, failed: bool) -> None:
        with self._condition:
            if self._end is None:
                self._end = error
                self._failed = failed
            self._condition.notify_all()


class TransactionOwner(Protocol):
    def send(
        self,
        destination: str,
        body: bytes | str = ...,
        *,
        headers: Headers | None = ...,
        content_type: str | None = ...,
        receipt: bool | str = ...,
        transaction: str | None = ...,
        content_length: bool = ...,
    ) -> Receipt | None: ...

    def ack(
        self,
        frame: Frame,
        *,
        transaction: str | None = ...,
        receipt: bool | str = ...,
        headers: Headers | None = ...,
    ) -> Receipt | None: ...

    def nack(
        self,
        frame: Frame,
        *,
        transaction: str | None = ...,
        receipt: bool | str = ...,
        headers: Headers | None = ...,
    ) -> Receipt | None: ...

    def end_transaction(
        self,
        tx: Transaction,
        command: str,
        receipt: bool | str,
        headers: Headers | None,
    ) -> Receipt | None: ...

    def is_open(self, tx: Transaction) -> bool: ...


class Transaction:
    """An open transaction; ``with`` commits on success and aborts on an exception.

    It belongs to the connection it was begun on: the broker aborts it when that connection
    ends, so committing it later raises ``ConnectionClosed``, also after a reconnect.
    """

    def __init__(self, owner: TransactionOwner, id: str, session: object) -> None:
        self.id = id
        self._owner = owner
        self.session = session
        self.lost: BaseException | None = None  # the connection ended while it was open

    def __repr__(self) -> str:
        return f"<Transaction {self.id}>"

    def send(self, destination: str, body: bytes | str, **options: Any) -> Receipt | None:
        """``Client.send`` inside this transaction: the broker delivers it at COMMIT."""
        return self._owner.send(destination, body, transaction=self.id, **options)

    def ack(self, frame: Frame, **options: Any) -> Receipt | None:
        """``Client.ack`` inside this transaction: it takes effect at COMMIT."""
        return self._owner.ack(frame, transaction=self.id, **options)

    def nack(self, frame: Frame, **options: Any) -> Receipt | None:
        """``Client.nack`` inside this transaction: it takes effect at COMMIT."""
        return self._owner.nack(frame, transaction=self.id, **options)

    def commit(
        self, *, receipt: bool | str = False, headers: Headers | None = None
    ) -> Receipt | None:
        """COMMIT: what was sent, acked and nacked in it takes effect. Raises
        ``ConnectionClosed`` when the connection it was begun on has ended (the broker
        aborted it), ``UsageError`` when it is no longer open."""
        return self._owner.end_transaction(self, "COMMIT", receipt, headers)

    def abort(
        self, *, receipt: bool | str = False, headers: Headers | None = None
    ) -> Receipt | None:
        """ABORT: nothing done in it takes effect. Raises as ``commit``."""
        return self._owner.end_transaction(self, "ABORT", receipt, headers)

    def __enter__(self) -> Transaction:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is None:
            self.commit()
        elif self.lost is None and self._owner.is_open(self):
            self.abort()


class Acknowledger(Protocol):
    def acknowledge(
        self,
        frame: Frame,
        positive: bool,
        *,
        transaction: str | None = ...,
        receipt: bool | str = ...,
        headers: Headers | None = ...,
    ) -> Receipt | None: ...


class Message(Frame):
    """A MESSAGE as a client delivers it: a ``Frame`` that can acknowledge itself.

    It remembers the connection it came over (``origin``): an ACK is only meaningful there,
    so acking it after that connection ended raises ``ConnectionClosed`` (the broker
    redelivers it). ``Frame`` itself stays pure data.
    """

    __slots__ = ("_acknowledger", "origin")

    _acknowledger: Acknowledger
    origin: object

    @classmethod
    def received(cls, frame: Frame, acknowledger: Acknowledger, origin: object) -> Message:
        # Field by field, no __init__: the parser's frame is already checked and decoded.
        message = object.__new__(cls)
        message.command = frame.command
        message.headers = frame.headers
        message.body = frame.body
        message._pairs = getattr(frame, "_pairs", None)
        message._acknowledger = acknowledger
        message.origin = origin
        return message

    def ack(
        self,
        *,
        transaction: str | None = None,
        receipt: bool | str = False,
        headers: Headers | None = None,
    ) -> Receipt | None:
        """Acknowledge this MESSAGE through the client that received it."""
        return self._acknowledger.acknowledge(
            self, True, transaction=transaction, receipt=receipt, headers=headers
        )

    def nack(
        self,
        *,
        transaction: str | None = None,
        receipt: bool | str = False,
        headers: Headers | None = None,
    ) -> Receipt | None:
        """Reject this MESSAGE through the client that received it (not in STOMP 1.0)."""
        return self._acknowledger.acknowledge(
            self, False, transaction=transaction, receipt=receipt, headers=headers
        )
