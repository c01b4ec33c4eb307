"""What the client hands back: Receipt, Subscription and Transaction.

Every wait here has a timeout, and a wait that only the reader thread could satisfy is
refused on the reader thread itself (inside a listener) with ``UsageError``, instead of
deadlocking.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from .errors import NotConnected, ReceiptTimeout, ReceiveTimeout, StompError, UsageError
from .frame import Frame

if TYPE_CHECKING:
    from .client import Client
    from .connection import Connection

__all__ = ["DEFAULT_MAX_BUFFERED", "Receipt", "Subscription", "Transaction"]

DEFAULT_MAX_BUFFERED = 1000
_POLL = 0.25  # a blocked reader re-checks the connection this often (seconds)


class Receipt:
    """A pending RECEIPT; ``wait`` returns the RECEIPT frame or raises why it never came."""

    def __init__(self, receipt_id: str, command: str, connection: Connection, default: float):
        self.id = receipt_id
        self.command = command
        self._connection = connection
        self._default_timeout = default
        self._done = threading.Event()
        self._frame: Frame | None = None
        self._error: BaseException | None = None

    def __repr__(self) -> str:
        state = "received" if self._frame else "failed" if self._error else "pending"
        return f"<Receipt {self.id} for {self.command}: {state}>"

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> Frame:
        """The RECEIPT frame. ``timeout=None`` means the client's ``receipt_timeout``.

        Raises ``ReceiptTimeout``, ``BrokerError`` (the broker answered ERROR for this
        frame) or ``ConnectionClosed`` (the connection ended before the RECEIPT came).
        """
        if not self._done.is_set() and self._connection.on_reader_thread:
            raise UsageError(
                "cannot wait for a RECEIPT inside a listener or callback: the reader thread "
                "that would deliver it is the one waiting; use on_receipt instead"
            )
        seconds = self._default_timeout if timeout is None else timeout
        if not self._done.wait(seconds):
            raise ReceiptTimeout(f"no RECEIPT {self.id} for {self.command} within {seconds:g} s")
        if self._error is not None:
            raise self._error
        assert self._frame is not None  # set before _done
        return self._frame

    def _resolve(self, frame: Frame) -> None:
        self._frame = frame
        self._done.set()

    def _fail(self, error: BaseException) -> None:
        if not self._done.is_set():
            self._error = error
            self._done.set()


class Subscription:
    """A live subscription.

    Its messages go to the listeners' ``on_message`` and to ``callback`` when one was given.
    A subscription without a callback also keeps its messages in a buffer of at most
    ``max_buffered`` frames for ``get()`` and iteration. When that buffer is full:

    * if some listener handles messages (overrides ``on_message``), the oldest buffered
      frame is dropped (that listener already had it) and counted in ``discarded``;
    * otherwise the reader waits until ``get()`` makes room, so the broker is slowed down
      (TCP flow control) and nothing is lost. While it waits, bytes arriving count as a sign
      of life for the heart-beat check.
    """

    def __init__(
        self,
        client: Client,
        id: str,
        destination: str,
        ack: str,
        headers: tuple[tuple[str, str], ...],
        callback: Callable[[Frame], None] | None,
        max_buffered: int,
    ) -> None:
        self.id = id
        self.destination = destination
        self.ack = ack
        self.headers = headers
        self.callback = callback
        self.max_buffered = max_buffered
        self.discarded = 0
        self._client = client
        self._buffer: collections.deque[Frame] = collections.deque()
        self._condition = threading.Condition()
        self._end: BaseException | None = None  # why no more messages will come

    def __repr__(self) -> str:
        return f"<Subscription {self.id} {self.destination} ack={self.ack}>"

    @property
    def active(self) -> bool:
        return self._end is None

    def unsubscribe(
        self, *, receipt: bool = False, headers: Mapping[str, str] | None = None
    ) -> Receipt | None:
        return self._client.unsubscribe(self, receipt=receipt, headers=headers)

    def get(self, timeout: float | None = None) -> Frame:
        """The next buffered message; waits at most ``timeout`` seconds (None: until one
        comes or the subscription ends).

        Raises ``ReceiveTimeout``; ``NotConnected`` once unsubscribed or disconnected and
        the buffer is empty; ``ConnectionClosed`` (or the error that ended it) when the
        connection was lost.
        """
        self._client._refuse_on_reader("wait for a message with Subscription.get()")
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
            self._condition.notify_all()
            return frame

    def __iter__(self) -> Iterator[Frame]:
        """Messages until ``unsubscribe()`` or ``disconnect()``; a lost connection raises."""
        while True:
            try:
                yield self.get()
            except NotConnected:
                return

    # -- called by the client ----------------------------------------------------------------

    def _deliver(self, frame: Frame, connection: Connection, listeners_have_it: bool) -> None:
        if self.callback is not None:
            return
        with self._condition:
            while len(self._buffer) >= self.max_buffered and self._end is None:
                if listeners_have_it:
                    self._buffer.popleft()
                    self.discarded += 1
                    break
                if connection.ended.is_set() or connection.ending_requested:
                    break
                self._condition.wait(_POLL)
            self._buffer.append(frame)
            self._condition.notify_all()

    def _close(self, error: StompError) -> None:
        with self._condition:
            if self._end is None:
                self._end = error
            self._condition.notify_all()


class Transaction:
    """An open transaction; ``with`` commits on success and aborts on an exception."""

    def __init__(self, client: Client, id: str) -> None:
        self.id = id
        self._client = client
        self.lost: BaseException | None = None  # the connection ended while it was open

    def __repr__(self) -> str:
        return f"<Transaction {self.id}>"

    def send(self, destination: str, body: bytes | str, **options: Any) -> Receipt | None:
        return self._client.send(destination, body, transaction=self.id, **options)

    def ack(self, frame: Frame) -> Receipt | None:
        return self._client.ack(frame, transaction=self.id)

    def nack(self, frame: Frame) -> Receipt | None:
        return self._client.nack(frame, transaction=self.id)

    def commit(self, *, receipt: bool = False) -> Receipt | None:
        return self._client._end_transaction(self, "COMMIT", receipt)

    def abort(self, *, receipt: bool = False) -> Receipt | None:
        return self._client._end_transaction(self, "ABORT", receipt)

    def __enter__(self) -> Transaction:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is None:
            self.commit()
        elif self.lost is None and self.id in self._client._transactions:
            self.abort()
