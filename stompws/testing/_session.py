"""The server side of one STOMP session: what the embedded broker does with each frame.

``ServerSession.handle`` is called with the broker's lock held, one frame at a time, in the
order the client sent them. It answers through a ``Link`` (the connection), which only
queues frames for the connection's writer thread, so handling never blocks on a socket.

A frame the broker cannot accept ends the session: an ERROR frame (``message`` header, the
detail in the body, ``receipt-id`` when the bad frame asked for a receipt) and then a close,
as the STOMP specification has brokers do.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Protocol

from ..frame import Frame
from ._router import QUEUE_PREFIX, TOPIC_PREFIX, Delivery, Subscription

if TYPE_CHECKING:
    from ._hub import Hub

__all__ = [
    "ACK_MODES",
    "Link",
    "ServerSession",
    "negotiate_heartbeats",
    "negotiate_version",
]

ACK_MODES: Final = ("auto", "client", "client-individual")

# WebSocket close codes that go with the reasons a session ends (RFC 6455, 7.4.1).
CLOSE_NORMAL: Final = 1000
CLOSE_PROTOCOL_ERROR: Final = 1002
CLOSE_POLICY: Final = 1008

# Headers of a SEND that MESSAGE does not pass on: the broker sets these itself, or they
# were addressed to the broker only.
_NOT_PASSED_ON: Final = frozenset(
    {
        "destination",
        "transaction",
        "receipt",
        "content-length",
        "message-id",
        "subscription",
        "ack",
        "redelivered",
    }
)


class Link(Protocol):
    """What a session needs from its connection; no method may block."""

    def send(self, frame: Frame) -> None: ...

    def close(self, code: int, reason: str) -> None: ...

    def negotiated(self, version: str, send_ms: int, expect_ms: int) -> None: ...


class _Refused(Exception):
    def __init__(
        self,
        message: str,
        detail: str,
        *,
        code: int = CLOSE_PROTOCOL_ERROR,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail
        self.code = code
        self.headers = headers


def negotiate_version(accept_version: str | None, supported: tuple[str, ...]) -> str | None:
    """The highest version both sides speak; a CONNECT without accept-version is 1.0."""
    if accept_version is None:
        return "1.0" if "1.0" in supported else None
    offered = {item.strip() for item in accept_version.split(",")}
    common = [version for version in supported if version in offered]
    return max(common) if common else None


def negotiate_heartbeats(
    client: tuple[int, int], broker: tuple[int, int] | None
) -> tuple[tuple[int, int], int, int]:
    """The broker's heart-beat header and the agreed intervals in ms (0: none).

    ``client`` is the CONNECT's (cx, cy); ``broker`` the configured (sx, sy), where None
    means "whatever the client asks for" (answer cy,cx, as RabbitMQ does). The broker sends
    every max(sx, cy) and expects the client every max(cx, sy), each only when both are set.
    """
    cx, cy = client
    sx, sy = broker if broker is not None else (cy, cx)
    send_ms = max(sx, cy) if sx and cy else 0
    expect_ms = max(cx, sy) if cx and sy else 0
    return (sx, sy), send_ms, expect_ms


def _small_number(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 18


def _parse_heartbeat(value: str) -> tuple[int, int]:
    first, comma, second = value.partition(",")
    first, second = first.strip(), second.strip()
    # Bounded digits: int() refuses thousands of them with a ValueError (a broken session).
    if comma and _small_number(first) and _small_number(second):
        return int(first), int(second)
    raise _Refused(
        "malformed heart-beat header", f"heart-beat must be two numbers, not {value[:40]!r}"
    )


def _one_line(text: str) -> str:
    """A header value any version can carry: no line breaks (1.0 and CONNECTED escape none)."""
    return " ".join(text.splitlines())


class ServerSession:
    def __init__(self, hub: Hub, link: Link) -> None:
        self.hub = hub
        self.link = link
        self.connected = False
        self.ended = False
        self.version: str | None = None
        self.session_id: str | None = None
        self.login: str | None = None
        # Keyed "id:<id>", or "destination:<destination>" for a STOMP 1.0 SUBSCRIBE without id.
        self.subscriptions: dict[str, Subscription] = {}
        self.transactions: dict[str, list[Callable[[], None]]] = {}
        self._handlers: dict[str, Callable[[Frame], None]] = {
            "SEND": self._send,
            "SUBSCRIBE": self._subscribe,
            "UNSUBSCRIBE": self._unsubscribe,
            "ACK": self._ack,
            "NACK": self._nack,
            "BEGIN": self._begin,
            "COMMIT": self._commit,
            "ABORT": self._abort,
            "DISCONNECT": self._disconnect,
            "CONNECT": self._connect_again,
            "STOMP": self._connect_again,
        }

    # -- entry points (the broker's lock is held) ------------------------------------------

    def handle(self, frame: Frame) -> None:
        if self.ended:
            return
        command = frame.command
        try:
            if not self.connected:
                self._connect(frame)
                return
            handler = self._handlers.get(command)
            if handler is None or (command == "NACK" and self.version == "1.0"):
                raise _Refused(
                    "unknown command",
                    f"{command} is not a command a STOMP {self.version} client sends",
                )
            handler(frame)
        except _Refused as refusal:
            self.fail(
                refusal.message,
                refusal.detail,
                receipt_id=frame.headers.get("receipt"),
                code=refusal.code,
                headers=refusal.headers,
            )
            return
        receipt = frame.headers.get("receipt")
        if receipt is not None:
            self.link.send(Frame("RECEIPT", [("receipt-id", receipt)]))
        if command == "DISCONNECT":
            self.end()
            self.link.close(CLOSE_NORMAL, "DISCONNECT")

    def fail(
        self,
        message: str,
        detail: str,
        *,
        receipt_id: str | None = None,
        code: int = CLOSE_PROTOCOL_ERROR,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> None:
        """Send ERROR and close; the session ends at once, before the ERROR is written."""
        if self.ended:
            return
        self.end()
        pairs = [("message", _one_line(message)), *headers, ("content-type", "text/plain")]
        if receipt_id is not None:
            pairs.append(("receipt-id", receipt_id))
        self.link.send(Frame("ERROR", pairs, detail))
        self.link.close(code, message)

    def end(self) -> None:
        """Forget the session: unacked messages go back to their queues, transactions abort."""
        if self.ended:
            return
        self.ended = True
        self.hub.router.unsubscribe(list(self.subscriptions.values()))
        self.subscriptions.clear()
        self.transactions.clear()
        self.hub.changed()

    # -- CONNECT ---------------------------------------------------------------------------

    def _connect(self, frame: Frame) -> None:
        if frame.command not in ("CONNECT", "STOMP"):
            raise _Refused(
                "expected CONNECT", f"the first frame must be CONNECT or STOMP, not {frame.command}"
            )
        settings = self.hub.settings
        headers = frame.headers
        version = negotiate_version(headers.get("accept-version"), settings.versions)
        if version is None:
            supported = ",".join(settings.versions)
            raise _Refused(
                "unsupported STOMP version",
                f"this broker speaks STOMP {supported}; the client accepts "
                f"{headers.get('accept-version', '1.0')}",
                headers=(("version", supported),),
            )
        self.version = version
        login = headers.get("login")
        if settings.users is not None:
            expected = settings.users.get(login) if login is not None else None
            given = headers.get("passcode", "")
            if expected is None or not hmac.compare_digest(expected.encode(), given.encode()):
                raise _Refused(
                    "Access refused",
                    f"login {login!r} is unknown or its passcode is wrong",
                    code=CLOSE_POLICY,
                )
        client_beats = (0, 0)
        if version != "1.0":
            client_beats = _parse_heartbeat(headers.get("heart-beat", "0,0"))
        (sx, sy), send_ms, expect_ms = negotiate_heartbeats(client_beats, settings.heartbeats)
        self.login = login
        self.session_id = self.hub.new_session_id()
        pairs = []
        if "accept-version" in headers:
            pairs.append(("version", version))
        if version != "1.0":
            pairs.append(("heart-beat", f"{sx},{sy}"))
        pairs += [("session", self.session_id), ("server", settings.server)]
        self.link.negotiated(version, send_ms, expect_ms)
        self.link.send(Frame("CONNECTED", pairs))
        self.connected = True
        self.hub.changed()

    def _connect_again(self, frame: Frame) -> None:
        raise _Refused("already connected", f"{frame.command} after the session was established")

    # -- messaging -------------------------------------------------------------------------

    def _send(self, frame: Frame) -> None:
        destination = self._destination(frame)
        passed_on = [pair for pair in frame.header_list if pair[0] not in _NOT_PASSED_ON]
        router = self.hub.router
        message = router.new_message(destination, passed_on, frame.body)
        self._now_or_at_commit(frame, lambda: router.publish(message))

    def _subscribe(self, frame: Frame) -> None:
        destination = self._destination(frame)
        wire_id = frame.headers.get("id")
        if wire_id is None and self.version != "1.0":
            raise _Refused("missing id header", "SUBSCRIBE needs an id header in STOMP 1.1 and 1.2")
        key = f"id:{wire_id}" if wire_id is not None else f"destination:{destination}"
        if key in self.subscriptions:
            raise _Refused(
                "duplicate subscription",
                f"subscription {wire_id or destination!r} already exists on this connection",
            )
        ack = frame.headers.get("ack", "auto")
        if ack not in ACK_MODES:
            raise _Refused("invalid ack mode", f"ack must be one of {', '.join(ACK_MODES)}")
        prefetch_text = frame.headers.get("prefetch-count", "0")
        if not _small_number(prefetch_text):
            raise _Refused("invalid prefetch-count", f"not a number: {prefetch_text[:40]!r}")
        assert self.version is not None  # set at CONNECT
        subscription = Subscription(
            wire_id, destination, ack, self.version, self, self.link.send, int(prefetch_text)
        )
        self.subscriptions[key] = subscription
        self.hub.router.subscribe(subscription)

    def _unsubscribe(self, frame: Frame) -> None:
        wire_id = frame.headers.get("id")
        destination = frame.headers.get("destination")
        if wire_id is not None:
            key = f"id:{wire_id}"
        elif self.version == "1.0" and destination is not None:
            key = f"destination:{destination}"
            for candidate, existing in self.subscriptions.items():
                if existing.destination == destination:
                    key = candidate
                    break
        else:
            raise _Refused("missing id header", "UNSUBSCRIBE needs the subscription's id")
        ended = self.subscriptions.pop(key, None)
        if ended is None:
            raise _Refused("no such subscription", f"no subscription {wire_id or destination!r}")
        self.hub.router.unsubscribe([ended])

    def _ack(self, frame: Frame) -> None:
        delivery = self._delivery(frame)
        router = self.hub.router
        self._now_or_at_commit(frame, lambda: router.settle(delivery, True))

    def _nack(self, frame: Frame) -> None:
        delivery = self._delivery(frame)
        router = self.hub.router
        self._now_or_at_commit(frame, lambda: router.settle(delivery, False))

    def _delivery(self, frame: Frame) -> Delivery:
        """The pending delivery an ACK or NACK names, by the headers of this version."""
        headers = frame.headers
        command = frame.command
        if self.version == "1.2":
            ack_id = self._required(frame, "id")
            delivery = self.hub.router.unacked.get(ack_id)
            if delivery is not None and delivery.subscription.owner is self:
                return delivery
            raise _Refused(
                "unknown ack id",
                f"{command} id {ack_id!r} names no unacknowledged message of this session "
                "(messages of an ack mode auto subscription need no ACK)",
            )
        message_id = self._required(frame, "message-id")
        subscription_id = headers.get("subscription")
        if subscription_id is None and self.version == "1.1":
            raise _Refused("missing subscription header", f"{command} needs a subscription header")
        if subscription_id is not None:
            found = self.subscriptions.get(f"id:{subscription_id}")
            candidates = [found] if found is not None else []
        else:
            candidates = list(self.subscriptions.values())
        for subscription in candidates:
            delivery = subscription.find_message(message_id)
            if delivery is not None:
                return delivery
        raise _Refused(
            "unknown message-id",
            f"{command} message-id {message_id!r} names no unacknowledged message of "
            f"subscription {subscription_id or '(any)'} on this session",
        )

    # -- transactions ----------------------------------------------------------------------

    def _now_or_at_commit(self, frame: Frame, action: Callable[[], None]) -> None:
        transaction = frame.headers.get("transaction")
        if transaction is None:
            action()
            return
        actions = self.transactions.get(transaction)
        if actions is None:
            raise _Refused("unknown transaction", f"transaction {transaction!r} is not open")
        actions.append(action)

    def _begin(self, frame: Frame) -> None:
        transaction = self._required(frame, "transaction")
        if transaction in self.transactions:
            raise _Refused("duplicate transaction", f"transaction {transaction!r} is already open")
        self.transactions[transaction] = []

    def _commit(self, frame: Frame) -> None:
        for action in self._close_transaction(frame):
            action()

    def _abort(self, frame: Frame) -> None:
        self._close_transaction(frame)

    def _close_transaction(self, frame: Frame) -> list[Callable[[], None]]:
        transaction = self._required(frame, "transaction")
        actions = self.transactions.pop(transaction, None)
        if actions is None:
            raise _Refused("unknown transaction", f"transaction {transaction!r} is not open")
        return actions

    def _disconnect(self, frame: Frame) -> None:
        """Nothing to do before the receipt; ``handle`` closes after it."""

    # -- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _required(frame: Frame, name: str) -> str:
        value = frame.headers.get(name)
        if value is None:
            raise _Refused(f"missing {name} header", f"{frame.command} needs a {name} header")
        return value

    def _destination(self, frame: Frame) -> str:
        destination = self._required(frame, "destination")
        for prefix in (QUEUE_PREFIX, TOPIC_PREFIX):
            if destination.startswith(prefix) and len(destination) > len(prefix):
                return destination
        raise _Refused(
            "unknown destination",
            f"{destination!r}: this broker has queues /queue/NAME and topics /topic/NAME only",
        )
