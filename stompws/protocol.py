"""The client side of a STOMP session as a pure state machine (sans-IO).

``ClientProtocol`` turns the caller's intentions into bytes to send and received bytes into
events; it never touches a socket, starts a thread or reads a clock. Time is passed in as
``now`` (seconds, from any monotonic clock), so heart-beat logic is tested with plain numbers.

It owns what belongs to one STOMP session: the state (``State``), the negotiated version and
heart-beat intervals, the live subscriptions, the pending receipts and the open transactions.
Misuse by the caller raises ``UsageError`` or ``NotConnected``; a broker that breaks the
protocol raises ``ProtocolError`` from ``receive_data``.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final

from .errors import NotConnected, ProtocolError, UsageError
from .frame import VERSIONS, Frame, Headers
from .parser import (
    DEFAULT_MAX_FRAME_SIZE,
    DEFAULT_MAX_HEADER_COUNT,
    DEFAULT_MAX_HEADER_LINE,
    FrameParser,
    Heartbeat,
)

__all__ = [
    "ACK_MODES",
    "HEARTBEAT_BYTES",
    "ClientProtocol",
    "Connected",
    "ErrorReceived",
    "Event",
    "HeartbeatReceived",
    "Lost",
    "MessageReceived",
    "Outgoing",
    "ProtocolViolation",
    "ReceiptReceived",
    "State",
    "SubscriptionInfo",
]

ACK_MODES: Final = ("auto", "client", "client-individual")
HEARTBEAT_BYTES: Final = b"\n"


class State(enum.Enum):
    """A session's place in the STOMP conversation (``ClientProtocol.state``)."""

    IDLE = "idle"  # nothing sent yet
    CONNECTING = "connecting"  # CONNECT sent, CONNECTED not yet received
    CONNECTED = "connected"
    DISCONNECTING = "disconnecting"  # DISCONNECT sent; only its RECEIPT is still expected
    CLOSED = "closed"  # over for good: a new connection needs a new ClientProtocol


@dataclass(frozen=True, slots=True)
class SubscriptionInfo:
    """What was asked for in a SUBSCRIBE, kept so that it can be repeated on a reconnect."""

    id: str
    destination: str
    ack: str
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A frame to put on the wire, already encoded, and the receipt id it asks for."""

    frame: Frame
    data: bytes
    receipt_id: str | None = None


@dataclass(frozen=True, slots=True)
class Connected:
    frame: Frame
    version: str
    send_interval: float | None  # seconds between our heart-beats, None when off
    receive_timeout: float | None  # seconds of broker silence that mean it is dead


@dataclass(frozen=True, slots=True)
class MessageReceived:
    frame: Frame
    subscription: SubscriptionInfo | None  # None: a subscription this session did not make


@dataclass(frozen=True, slots=True)
class ReceiptReceived:
    frame: Frame
    receipt_id: str
    expected: bool  # False: a receipt id this session is not waiting for


@dataclass(frozen=True, slots=True)
class ErrorReceived:
    frame: Frame
    receipt_id: str | None  # the pending receipt this ERROR answers, if it names one
    # The subscription this ERROR ended, no longer in ``subscriptions``: one the broker
    # cancelled by naming it in a ``subscription`` header (RabbitMQ does when the queue it
    # reads is deleted, and keeps the connection open).
    ended_subscription: SubscriptionInfo | None = None


@dataclass(frozen=True, slots=True)
class HeartbeatReceived:
    pass


@dataclass(frozen=True, slots=True)
class ProtocolViolation:
    """The broker broke STOMP; always the last event: the session accepts nothing after it.

    The events before it in the same batch came from frames received intact, so a caller
    handles them first and then ends the connection with ``error``.
    """

    error: ProtocolError


@dataclass(frozen=True, slots=True)
class Lost:
    """What was in flight when the connection ended: these will never be answered."""

    pending_receipts: dict[str, str] = field(default_factory=dict)  # receipt id -> command
    open_transactions: tuple[str, ...] = ()


Event = (
    Connected
    | MessageReceived
    | ReceiptReceived
    | ErrorReceived
    | HeartbeatReceived
    | ProtocolViolation
)

_HEARTBEAT_EVENT: Final = HeartbeatReceived()

_FRAMES_FROM_BROKER: Final = frozenset({"CONNECTED", "MESSAGE", "RECEIPT", "ERROR"})


class ClientProtocol:
    """One client STOMP session, from CONNECT to the end of the connection."""

    def __init__(
        self,
        *,
        versions: Iterable[str] = VERSIONS,
        heartbeats: tuple[int, int] = (0, 0),
        heartbeat_tolerance: float = 2.0,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        max_header_count: int = DEFAULT_MAX_HEADER_COUNT,
        max_header_line: int = DEFAULT_MAX_HEADER_LINE,
        id_prefix: str = "",
        ids: Iterator[int] | None = None,
        subscriptions: Iterable[SubscriptionInfo] = (),
    ) -> None:
        """``ids`` numbers the ids this session chooses (subscriptions, transactions,
        receipts): pass one counter to every session of a client, so that an id is never
        reused on a later connection, where it could meet a stale handle (a commit of a
        transaction begun before a reconnect). ``subscriptions`` are those of the previous
        session of the same client: ``resubscribe_all()`` repeats them after CONNECTED.
        """
        offered = tuple(sorted(set(versions)))
        unknown = [v for v in offered if v not in VERSIONS]
        if not offered or unknown:
            raise UsageError(f"versions must be a non-empty choice of {VERSIONS}, not {offered}")
        if (
            len(heartbeats) != 2
            or not all(isinstance(ms, int) and ms >= 0 for ms in heartbeats)
            or isinstance(heartbeats, str)
        ):
            raise UsageError(f"heartbeats must be two whole milliseconds >= 0, not {heartbeats!r}")
        if heartbeat_tolerance < 1.0:
            raise UsageError(f"heartbeat_tolerance must be at least 1.0, not {heartbeat_tolerance}")
        self.versions = offered
        self.heartbeats = heartbeats
        self.heartbeat_tolerance = heartbeat_tolerance
        self.state = State.IDLE
        self.version: str | None = None
        self.server: str | None = None
        self.session: str | None = None
        self.send_interval: float | None = None
        self.receive_timeout: float | None = None
        self.subscriptions: dict[str, SubscriptionInfo] = {info.id: info for info in subscriptions}
        self._inherited = tuple(self.subscriptions.values())
        self.transactions: dict[str, None] = {}  # insertion-ordered set of open ids
        self.pending_receipts: dict[str, str] = {}  # receipt id -> command it was asked for
        self.disconnect_receipt: str | None = None
        self.last_sent = 0.0
        self.last_received = 0.0
        # Parse with the highest offered version until CONNECTED says which one it is:
        # only CONNECTED and ERROR can arrive before, and CONNECTED is never unescaped.
        self._parser = FrameParser(
            offered[-1],
            max_frame_size=max_frame_size,
            max_header_count=max_header_count,
            max_header_line=max_header_line,
        )
        self._violation: ProtocolViolation | None = None
        self._ids = ids if ids is not None else itertools.count(1)
        self._id_prefix = id_prefix

    # -- sending ---------------------------------------------------------------------------

    def connect(
        self,
        *,
        login: str | None = None,
        passcode: str | None = None,
        host: str | None = None,
        headers: Headers | None = None,
    ) -> Outgoing:
        """CONNECT, offering ``versions`` and ``heartbeats`` (neither header on a 1.0-only
        session, where they do not exist); ``headers`` come after ours and win on a clash.

        Raises ``UsageError`` when the session has already connected (one CONNECT per
        session: a new connection needs a new ``ClientProtocol``)."""
        if self.state is not State.IDLE:
            raise UsageError(
                f"CONNECT can be sent once, at the start; the session is {self.state.value}"
            )
        pairs: list[tuple[str, str]] = []
        modern = self.versions != ("1.0",)
        if modern:
            pairs.append(("accept-version", ",".join(self.versions)))
        if host is not None:
            pairs.append(("host", host))
        if login is not None:
            pairs.append(("login", login))
        if passcode is not None:
            pairs.append(("passcode", passcode))
        if modern:
            pairs.append(("heart-beat", f"{self.heartbeats[0]},{self.heartbeats[1]}"))
        pairs = _merge(pairs, headers)
        outgoing = self._encode(Frame("CONNECT", pairs), "1.2", with_length=False)
        self.state = State.CONNECTING
        return outgoing

    def send(
        self,
        destination: str,
        body: bytes | str,
        *,
        headers: Headers | None = None,
        content_type: str | None = None,
        transaction: str | None = None,
        receipt: bool | str = False,
        content_length: bool = True,
    ) -> Outgoing:
        """SEND ``body`` (``str`` is sent as UTF-8) to ``destination``; with ``receipt``,
        the frame carries a receipt id (``True``: a new one) that ``Outgoing.receipt_id``
        names and ``pending_receipts`` waits for.

        Raises ``NotConnected`` before CONNECTED or once disconnecting, ``UsageError`` for
        a ``transaction`` that is not open or a header no STOMP version can carry."""
        self._require_connected("SEND")
        pairs = [("destination", destination)]
        if content_type is not None:
            pairs.append(("content-type", content_type))
        if transaction is not None:
            self._require_transaction(transaction)
            pairs.append(("transaction", transaction))
        return self._build("SEND", _merge(pairs, headers), body, receipt, content_length)

    def subscribe(
        self,
        destination: str,
        *,
        ack: str = "auto",
        headers: Headers | None = None,
        id: str | None = None,
        receipt: bool | str = False,
    ) -> tuple[SubscriptionInfo, Outgoing]:
        """SUBSCRIBE to ``destination``; the subscription (its id: ``id``, else a new one)
        is live from now on and repeated by ``resubscribe_all`` on the next session.

        Raises ``NotConnected`` before CONNECTED or once disconnecting; ``UsageError`` for
        an unknown ack mode, client-individual on STOMP 1.0, or an id already live."""
        self._require_connected("SUBSCRIBE")
        if ack not in ACK_MODES:
            raise UsageError(f"ack must be one of {ACK_MODES}, not {ack!r}")
        if ack == "client-individual" and self.version == "1.0":
            raise UsageError("ack mode client-individual does not exist in STOMP 1.0")
        if id is None:
            id = self._new_id("sub")
            while id in self.subscriptions:
                id = self._new_id("sub")
        elif id in self.subscriptions:
            raise UsageError(f"subscription id {id!r} is already in use on this connection")
        extra = tuple((k, v) for k, v in _pairs(headers) if k not in ("destination", "id", "ack"))
        info = SubscriptionInfo(id=id, destination=destination, ack=ack, headers=extra)
        outgoing = self.resubscribe(info, receipt=receipt)
        return info, outgoing

    def resubscribe(self, info: SubscriptionInfo, *, receipt: bool | str = False) -> Outgoing:
        """SUBSCRIBE as ``info`` describes, keeping its id."""
        self._require_connected("SUBSCRIBE")
        pairs = [("destination", info.destination), ("id", info.id), ("ack", info.ack)]
        outgoing = self._build("SUBSCRIBE", pairs + list(info.headers), b"", receipt, False)
        self.subscriptions[info.id] = info
        return outgoing

    def resubscribe_all(self) -> list[Outgoing]:
        """The SUBSCRIBE frames that repeat the previous session's subscriptions, once,
        right after CONNECTED (before any frame of the caller's can be built), so that no
        id is subscribed twice on this connection.

        Each asks for a receipt, so that a refusal (its queue was deleted meanwhile) can be
        told apart from the others' success: the caller ends that subscription alone, as
        for any refused SUBSCRIBE, instead of every reconnect being refused again."""
        inherited, self._inherited = self._inherited, ()
        return [self.resubscribe(info, receipt=True) for info in inherited]

    def unsubscribe(
        self, id: str, *, receipt: bool | str = False, headers: Headers | None = None
    ) -> Outgoing:
        """UNSUBSCRIBE; ``headers`` for broker extensions (RabbitMQ removes a durable
        subscription only when UNSUBSCRIBE says ``durable:true``)."""
        self._require_connected("UNSUBSCRIBE")
        info = self.subscriptions.get(id)
        if info is None:
            raise UsageError(f"no live subscription with id {id!r}")
        pairs = [("id", id)]
        if self.version == "1.0":
            pairs.append(("destination", info.destination))
        outgoing = self._build("UNSUBSCRIBE", _merge(pairs, headers), b"", receipt, False)
        del self.subscriptions[id]
        return outgoing

    def ack(
        self,
        message: Frame,
        *,
        transaction: str | None = None,
        receipt: bool | str = False,
        headers: Headers | None = None,
    ) -> Outgoing:
        """ACK ``message`` with the headers its version needs (1.2: ``id`` from its
        ``ack``; 1.1: ``message-id`` and ``subscription``; 1.0: ``message-id``).

        Raises ``NotConnected`` before CONNECTED or once disconnecting; ``UsageError`` for a
        frame that is not a MESSAGE, lacks the header its version needs, belongs to an
        auto-ack subscription, or names a ``transaction`` that is not open."""
        return self._acknowledge("ACK", message, transaction, receipt, headers)

    def nack(
        self,
        message: Frame,
        *,
        transaction: str | None = None,
        receipt: bool | str = False,
        headers: Headers | None = None,
    ) -> Outgoing:
        """NACK ``message``: as ``ack``, and ``UsageError`` on STOMP 1.0, which has none."""
        if self.version == "1.0":
            raise UsageError("NACK does not exist in STOMP 1.0; this session negotiated 1.0")
        return self._acknowledge("NACK", message, transaction, receipt, headers)

    def _acknowledge(
        self,
        command: str,
        message: Frame,
        transaction: str | None,
        receipt: bool | str,
        extra: Headers | None = None,
    ) -> Outgoing:
        self._require_connected(command)
        if message.command != "MESSAGE":
            raise UsageError(f"{command} takes a MESSAGE frame, not {message.command}")
        headers = message.headers
        subscription_id = headers.get("subscription")
        info = self.subscriptions.get(subscription_id) if subscription_id is not None else None
        if info is not None and info.ack == "auto":
            raise UsageError(
                f"subscription {info.id!r} uses ack mode auto: its messages need no {command}"
            )
        if self.version == "1.2":
            ack_id = headers.get("ack")
            if ack_id is None:
                raise UsageError(f"the MESSAGE has no ack header, so STOMP 1.2 cannot {command} it")
            pairs = [("id", ack_id)]
        else:
            message_id = headers.get("message-id")
            if message_id is None:
                raise UsageError(f"the MESSAGE has no message-id header to {command}")
            pairs = [("message-id", message_id)]
            if self.version == "1.1":
                if subscription_id is None:
                    raise UsageError(f"the MESSAGE has no subscription header to {command}")
                pairs.append(("subscription", subscription_id))
        if transaction is not None:
            self._require_transaction(transaction)
            pairs.append(("transaction", transaction))
        return self._build(command, _merge(pairs, extra), b"", receipt, False)

    def begin(
        self, id: str | None = None, *, receipt: bool | str = False, headers: Headers | None = None
    ) -> tuple[str, Outgoing]:
        """BEGIN a transaction (``id``, else a new one); returns its id and the frame.

        Raises ``NotConnected`` before CONNECTED or once disconnecting, ``UsageError`` for an
        id that is already open."""
        self._require_connected("BEGIN")
        if id is None:
            id = self._new_id("tx")
        if id in self.transactions:
            raise UsageError(f"transaction {id!r} is already open")
        outgoing = self._build("BEGIN", _merge([("transaction", id)], headers), b"", receipt, False)
        self.transactions[id] = None
        return id, outgoing

    def commit(
        self, id: str, *, receipt: bool | str = False, headers: Headers | None = None
    ) -> Outgoing:
        """COMMIT transaction ``id``, which is then no longer open.

        Raises ``NotConnected`` before CONNECTED or once disconnecting, ``UsageError`` for an
        id that is not open."""
        return self._end_transaction("COMMIT", id, receipt, headers)

    def abort(
        self, id: str, *, receipt: bool | str = False, headers: Headers | None = None
    ) -> Outgoing:
        """ABORT transaction ``id``: as ``commit``."""
        return self._end_transaction("ABORT", id, receipt, headers)

    def _end_transaction(
        self, command: str, id: str, receipt: bool | str, headers: Headers | None
    ) -> Outgoing:
        self._require_connected(command)
        self._require_transaction(id)
        pairs = _merge([("transaction", id)], headers)
        outgoing = self._build(command, pairs, b"", receipt, False)
        del self.transactions[id]
        return outgoing

    def disconnect(self, *, receipt: bool | str = True, headers: Headers | None = None) -> Outgoing:
        """DISCONNECT, by default with a receipt (``disconnect_receipt``) whose RECEIPT
        says the broker has seen every frame before it; the session is then DISCONNECTING.

        Raises ``NotConnected`` before CONNECTED or once disconnecting."""
        self._require_connected("DISCONNECT")
        outgoing = self._build("DISCONNECT", _merge([], headers), b"", receipt, False)
        self.disconnect_receipt = outgoing.receipt_id
        self.state = State.DISCONNECTING
        return outgoing

    def forget_subscription(self, id: str) -> None:
        """The broker refused subscription ``id``: it is no longer live, is not made again
        on the next connection, and needs no UNSUBSCRIBE."""
        self.subscriptions.pop(id, None)

    def forget_receipt(self, receipt_id: str) -> None:
        """Stop waiting for ``receipt_id`` (a RECEIPT for it later is unexpected)."""
        self.pending_receipts.pop(receipt_id, None)

    def note_sent(self, now: float) -> None:
        """Record that bytes went out at ``now``: they count as our heart-beat."""
        self.last_sent = now

    # -- receiving -------------------------------------------------------------------------

    def receive_data(self, data: bytes, now: float) -> list[Event]:
        """Feed bytes from the broker; return what they mean, in order.

        Any byte counts as a sign of life, so ``last_received`` moves even when ``data``
        completes no frame.
        """
        if self._violation is not None:
            return [self._violation]  # the parser is broken after an error: it stays so
        if data:
            self.last_received = now
        failure: ProtocolError | None = None
        try:
            items = self._parser.feed(data)
        except ProtocolError as error:
            # The frames before the malformed one still count: they are handled first.
            items, failure = error.frames, error
        events: list[Event] = []
        try:
            for item in items:
                events.append(self._handle(item))
        except ProtocolError as error:
            failure = error
        if failure is not None:
            self.state = State.CLOSED
            self._violation = ProtocolViolation(failure)
            events.append(self._violation)
        return events

    def _handle(self, item: Frame | Heartbeat) -> Event:
        if isinstance(item, Heartbeat):
            return _HEARTBEAT_EVENT
        command = item.command
        if command == "MESSAGE":
            if self.state is State.CONNECTING or self.state is State.IDLE:
                raise ProtocolError("MESSAGE frame before CONNECTED")
            subscription_id = item.headers.get("subscription")
            info = self.subscriptions.get(subscription_id) if subscription_id else None
            if info is None and subscription_id is None and len(self.subscriptions) == 1:
                # STOMP 1.0 brokers may leave the subscription header out.
                info = next(iter(self.subscriptions.values()))
            return MessageReceived(item, info)
        if command == "RECEIPT":
            receipt_id = item.headers.get("receipt-id")
            if receipt_id is None:
                raise ProtocolError("RECEIPT frame without a receipt-id header")
            expected = self.pending_receipts.pop(receipt_id, None) is not None
            if receipt_id == self.disconnect_receipt:
                self.state = State.CLOSED
            return ReceiptReceived(item, receipt_id, expected)
        if command == "ERROR":
            receipt_id = item.headers.get("receipt-id")
            if receipt_id is not None and self.pending_receipts.pop(receipt_id, None) is None:
                receipt_id = None
            if self.state is State.CONNECTING:
                self.state = State.CLOSED
            # Naming a subscription (and no frame of ours) ends it; any other ERROR is about
            # a frame, or about the connection.
            cancelled = item.headers.get("subscription") if receipt_id is None else None
            ended = self.subscriptions.pop(cancelled, None) if cancelled is not None else None
            return ErrorReceived(item, receipt_id, ended)
        if command == "CONNECTED":
            return self._connected(item)
        if command in _FRAMES_FROM_BROKER:  # pragma: no cover - every one is handled above
            raise AssertionError(command)
        raise ProtocolError(f"a broker does not send {command} frames")

    def _connected(self, frame: Frame) -> Connected:
        if self.state is not State.CONNECTING:
            raise ProtocolError(f"CONNECTED frame while the session is {self.state.value}")
        version = frame.headers.get("version", "1.0")
        if version not in self.versions:
            raise ProtocolError(
                f"broker chose STOMP version {version!r}, which was not offered "
                f"(offered {','.join(self.versions)})"
            )
        self.version = version
        self._parser.version = version
        self.server = frame.headers.get("server")
        self.session = frame.headers.get("session")
        if version != "1.0":
            broker_send, broker_expects = _parse_heartbeat(frame.headers.get("heart-beat", "0,0"))
            we_send, we_expect = self.heartbeats
            if we_send and broker_expects:
                self.send_interval = max(we_send, broker_expects) / 1000.0
            if we_expect and broker_send:
                interval = max(we_expect, broker_send) / 1000.0
                # The margin: ActiveMQ's heart-beat comes exactly two intervals after its
                # last frame (and after CONNECTED), which is the default tolerance on the
                # dot; a slack of a quarter interval, at most 0.5 s, keeps it alive and a
                # frozen broker still found within tolerance x interval + 0.5 s.
                self.receive_timeout = interval * self.heartbeat_tolerance + min(interval / 4, 0.5)
        self.state = State.CONNECTED
        return Connected(frame, version, self.send_interval, self.receive_timeout)

    # -- time ------------------------------------------------------------------------------

    def next_heartbeat_at(self) -> float | None:
        """When our next heart-beat is due if nothing else is sent; None when we send none."""
        if self.send_interval is None or self.state is not State.CONNECTED:
            return None
        return self.last_sent + self.send_interval

    def heartbeat_due(self, now: float) -> bool:
        """Whether a heart-beat should go out at ``now``: nothing was sent for the agreed
        interval."""
        due = self.next_heartbeat_at()
        return due is not None and now >= due

    def silence_deadline(self) -> float | None:
        """When the broker counts as dead if nothing arrives before; None when not watched."""
        if self.receive_timeout is None or self.state not in (State.CONNECTED, State.DISCONNECTING):
            return None
        return self.last_received + self.receive_timeout

    def broker_silent(self, now: float) -> bool:
        """Whether, at ``now``, the broker has been silent past the tolerated time (the
        caller decides what else counts as life: ``Connection`` asks the transport)."""
        deadline = self.silence_deadline()
        return deadline is not None and now > deadline

    # -- the end ---------------------------------------------------------------------------

    def connection_lost(self) -> Lost:
        """The transport is gone: close the session and return what will never be answered.

        Subscriptions stay in ``subscriptions`` so that a reconnect can repeat them.
        """
        lost = Lost(dict(self.pending_receipts), tuple(self.transactions))
        self.pending_receipts.clear()
        self.transactions.clear()
        self.state = State.CLOSED
        return lost

    # -- helpers ---------------------------------------------------------------------------

    def _require_connected(self, command: str) -> None:
        if self.state is State.CONNECTED:
            return
        if self.state in (State.IDLE, State.CONNECTING):
            raise NotConnected(f"cannot send {command} before the broker's CONNECTED")
        raise NotConnected(f"cannot send {command}: the session is {self.state.value}")

    def _require_transaction(self, id: str) -> None:
        if id not in self.transactions:
            raise UsageError(f"no open transaction with id {id!r}")

    def _new_id(self, kind: str) -> str:
        return f"{self._id_prefix}{kind}-{next(self._ids)}"

    def _build(
        self,
        command: str,
        pairs: list[tuple[str, str]],
        body: bytes | str,
        receipt: bool | str,
        with_length: bool,
    ) -> Outgoing:
        receipt_id = None
        if isinstance(receipt, str):
            if not receipt:
                raise UsageError("a receipt id must not be empty")
            if receipt in self.pending_receipts:
                raise UsageError(f"receipt id {receipt!r} is already waiting for its RECEIPT")
            receipt_id = receipt
        elif receipt:
            receipt_id = self._new_id("rcpt")
        if receipt_id is not None:
            pairs = [(name, value) for name, value in pairs if name != "receipt"]
            pairs.append(("receipt", receipt_id))
        version = self.version or self.versions[-1]  # always set once CONNECTED
        outgoing = self._encode(Frame(command, pairs, body), version, with_length, receipt_id)
        if receipt_id is not None:
            self.pending_receipts[receipt_id] = command
        return outgoing

    @staticmethod
    def _encode(
        frame: Frame, version: str, with_length: bool, receipt_id: str | None = None
    ) -> Outgoing:
        return Outgoing(frame, frame.encode(version, content_length=with_length), receipt_id)


def _pairs(headers: Headers | None) -> list[tuple[str, str]]:
    if headers is None:
        return []
    if isinstance(headers, Mapping):
        return [(str(k), str(v)) for k, v in headers.items()]
    return [(str(k), str(v)) for k, v in headers]


def _merge(ours: list[tuple[str, str]], theirs: Headers | None) -> list[tuple[str, str]]:
    """Our headers, with the caller's extra ones after them; the caller's win on a clash."""
    extra = _pairs(theirs)
    if not extra:
        return ours
    overridden = {name for name, _ in extra}
    return [item for item in ours if item[0] not in overridden] + extra


def _parse_heartbeat(value: str) -> tuple[int, int]:
    send, comma, receive = value.partition(",")
    try:
        if not comma:
            raise ValueError(value)
        result = int(send.strip()), int(receive.strip())
    except ValueError:
        raise ProtocolError(f"malformed heart-beat header in CONNECTED: {value!r}") from None
    if result[0] < 0 or result[1] < 0:
        raise ProtocolError(f"negative heart-beat in CONNECTED: {value!r}")
    return result
