"""The threaded STOMP client: the public facade over connections, sessions and listeners.

A ``Client`` owns its listeners, its subscriptions (which outlive one connection, for
reconnects), its pending receipts and open transactions, and at most one live
``Connection``. It never holds its own lock while calling user code; the connection's lock is
held only to build and write a frame.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from .connection import Connection
from .errors import (
    BrokerError,
    ConnectError,
    ConnectionClosed,
    ConnectTimeout,
    NotConnected,
    StompError,
    UsageError,
)
from .events import EventHandling
from .frame import VERSIONS, Frame, Headers
from .handles import DEFAULT_MAX_BUFFERED, Receipt, Subscription, Transaction
from .lifecycle import ClientState, ConnectAttempt, Reconnecting
from .listener import Listener, Listeners
from .parser import DEFAULT_MAX_FRAME_SIZE
from .protocol import ClientProtocol, Outgoing
from .reconnect import Reconnect
from .sending import Sending
from .transport import Endpoint, HandshakeGuard, open_transport, parse_url

if TYPE_CHECKING:
    import ssl  # only the type: sockets and TLS stay in the transports

__all__ = ["Client", "ClientState"]

logger = logging.getLogger("stompws.client")


class _Acker:
    """Bound to each received MESSAGE as ``frame.ack()``; remembers the connection it came
    over, because an ACK is only meaningful on that connection."""

    __slots__ = ("client", "connection")

    def __init__(self, client: Client, connection: Connection) -> None:
        self.client = client
        self.connection = connection

    def __call__(self, frame: Frame, positive: bool, transaction: str | None) -> None:
        self.client._acknowledge(frame, positive, transaction)


class Client(EventHandling, Reconnecting, Sending):
    """A STOMP client over WebSocket (ws://, wss://) or TCP (stomp://, stomp+ssl://).

    See the README for the threading model. All arguments after the URL are keyword-only;
    ``url`` may also be a list of URLs, tried in order.
    """

    def __init__(
        self,
        url: str | Sequence[str],
        *,
        login: str | None = None,
        passcode: str | None = None,
        host: str | None = None,
        heartbeats: tuple[int, int] | None = None,
        versions: Sequence[str] | None = None,
        connect_headers: Headers | None = None,
        ws_headers: dict[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        reconnect: Reconnect | None = None,
        connect_timeout: float = 10.0,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        heartbeat_tolerance: float = 2.0,
        write_timeout: float = 10.0,
        receipt_timeout: float = 30.0,
    ) -> None:
        urls = [url] if isinstance(url, str) else list(url)
        if not urls:
            raise UsageError("no URL to connect to")
        self._endpoints = [parse_url(item) for item in urls]
        self._login = login
        self._passcode = passcode
        # An argument given here wins over the same option in the URL's query (?heartbeat=,
        # ?vhost=, ?version=), which wins over the API's defaults. The URLs of one client
        # must agree on an option the arguments leave open: it has one setting for every
        # URL it fails over to.
        from_urls: dict[str, Any] = {}
        for option, given in (("vhost", host), ("heartbeats", heartbeats), ("versions", versions)):
            if given is not None:
                continue
            values = {getattr(endpoint, option) for endpoint in self._endpoints} - {None}
            if len(values) > 1:
                raise UsageError(
                    f"the URLs give different {option} options {sorted(map(str, values))}; "
                    "give the same in each, or pass it as an argument"
                )
            from_urls[option] = values.pop() if values else None
        if host is None:
            host = from_urls.get("vhost")
        if heartbeats is None:
            heartbeats = from_urls.get("heartbeats") or (10_000, 10_000)
        if versions is None:
            versions = from_urls.get("versions") or VERSIONS
        self._host = host
        self._versions = tuple(versions)
        # Checked now, so that a bad setting fails here and not at connect().
        ClientProtocol(
            versions=self._versions,
            heartbeats=heartbeats,
            heartbeat_tolerance=heartbeat_tolerance,
            max_frame_size=max_frame_size,
        )
        for name, seconds in (
            ("connect_timeout", connect_timeout),
            ("write_timeout", write_timeout),
            ("receipt_timeout", receipt_timeout),
        ):
            if not seconds > 0:
                raise UsageError(f"{name} must be more than 0 seconds, not {seconds!r}")
        if reconnect is not None and not isinstance(reconnect, Reconnect):
            raise UsageError(f"reconnect must be a stompws.Reconnect, not {reconnect!r}")
        self._reconnect = reconnect
        self._heartbeats = heartbeats
        self._heartbeat_tolerance = heartbeat_tolerance
        self._connect_headers = connect_headers
        self._ws_headers = dict(ws_headers or {})
        self._ssl_context = ssl_context
        self.connect_timeout = connect_timeout
        self.write_timeout = write_timeout
        self.receipt_timeout = receipt_timeout
        self._max_frame_size = max_frame_size

        self._listeners = Listeners()
        self._lock = threading.Lock()  # guards the fields below; never held over user code
        self._state_changed = threading.Condition(self._lock)
        self._stop_reconnecting = threading.Event()
        self._reconnector: threading.Thread | None = None
        self._opening: HandshakeGuard | None = None  # the attempt still opening its socket
        self._state = ClientState.NEW
        self._connection: Connection | None = None
        self._attempt: ConnectAttempt | None = None
        self._subscriptions: dict[str, Subscription] = {}
        self._transactions: dict[str, Transaction] = {}
        self._receipts: dict[str, Receipt] = {}
        self._last_error: BrokerError | None = None  # an ERROR with no MESSAGE after it yet
        self._unmatched_seen: set[str] = set()  # subscriptions not ours, already warned of
        self._endpoint: Endpoint = self._endpoints[0]

    def __repr__(self) -> str:
        return f"<stompws.Client {self._endpoint.url} {self._state.value}>"

    # -- properties --------------------------------------------------------------------------

    @property
    def state(self) -> ClientState:
        return self._state

    @property
    def is_connected(self) -> bool:
        connection = self._connection
        return (
            self._state is ClientState.CONNECTED
            and connection is not None
            and not connection.ended.is_set()
        )

    @property
    def url(self) -> str:
        """The URL of the current (or last) connection, without credentials."""
        return self._endpoint.url

    @property
    def version(self) -> str | None:
        connection = self._connection
        return connection.protocol.version if connection else None

    @property
    def server(self) -> str | None:
        connection = self._connection
        return connection.protocol.server if connection else None

    @property
    def session(self) -> str | None:
        connection = self._connection
        return connection.protocol.session if connection else None

    @property
    def subscriptions(self) -> list[Subscription]:
        return list(self._subscriptions.values())

    @property
    def transactions(self) -> list[Transaction]:
        return list(self._transactions.values())

    def add_listener(self, listener: Listener) -> None:
        self._listeners.add(listener)

    def remove_listener(self, listener: Listener) -> None:
        self._listeners.remove(listener)

    # -- connecting --------------------------------------------------------------------------

    def connect(self, timeout: float | None = None) -> Frame:
        """Connect and return the broker's CONNECTED frame.

        ``timeout`` (default ``connect_timeout``) covers TCP, TLS, the WebSocket handshake
        and CONNECTED, for each URL in turn. Raises ``ConnectTimeout``, ``BrokerError`` (the
        broker answered ERROR, e.g. bad credentials) or ``ConnectError``.
        """
        with self._lock:
            if self._state is ClientState.CLOSED:
                raise UsageError("this client was disconnected; create a new Client")
            if self._state not in (ClientState.NEW, ClientState.DISCONNECTED):
                raise UsageError(f"connect() on a client that is {self._state.value}")
            self._state = ClientState.CONNECTING
        seconds = self.connect_timeout if timeout is None else timeout
        failures: list[ConnectError] = []
        try:
            for endpoint in self._endpoints:
                try:
                    frame = self._connect_to(endpoint, seconds)
                except ConnectError as error:
                    failures.append(error)
                    continue
                with self._lock:
                    self._state = ClientState.CONNECTED
                    self._state_changed.notify_all()
                return frame
        except BaseException:
            with self._lock:
                self._state = ClientState.DISCONNECTED
            raise
        with self._lock:
            self._state = ClientState.DISCONNECTED
        if len(failures) == 1:
            raise failures[0]
        summary = "; ".join(str(error) for error in failures)
        raise failures[-1].__class__(f"no URL could be connected: {summary}") from failures[-1]

    def _connect_to(self, endpoint: Endpoint, seconds: float) -> Frame:
        deadline = time.monotonic() + seconds
        self._endpoint = endpoint
        self._listeners.call("on_connecting", endpoint.url)
        guard = HandshakeGuard(seconds)
        self._opening = guard
        try:
            if self._stop_reconnecting.is_set() and self._state is not ClientState.CONNECTING:
                guard.abort()
            transport = open_transport(
                endpoint,
                guard=guard,
                ssl_context=self._ssl_context,
                ws_headers=self._ws_headers,
                versions=self._versions,
                write_timeout=self.write_timeout,
            )
        except ConnectError as error:
            self._listeners.call("on_disconnected", error)
            raise
        finally:
            self._opening = None
        protocol = ClientProtocol(
            versions=self._versions,
            heartbeats=self._heartbeats,
            heartbeat_tolerance=self._heartbeat_tolerance,
            max_frame_size=self._max_frame_size,
        )
        connection = Connection(transport, protocol, self)
        connection.acker = _Acker(self, connection)
        attempt = ConnectAttempt()
        with self._lock:
            self._connection = connection
            self._attempt = attempt
            self._last_error = None
        login = self._login if self._login is not None else endpoint.login
        passcode = self._passcode if self._passcode is not None else endpoint.passcode
        # CONNECT goes out before the reader starts, so that a peer closing at once cannot
        # close the session under it; a failed write is reported by the reader, which then
        # finds the connection aborted.
        try:
            outgoing = connection.perform(
                lambda session: session.connect(
                    login=login, passcode=passcode, host=self._host, headers=self._connect_headers
                )
            )
            self._listeners.call("on_send", outgoing.frame)
        except UsageError:
            # The CONNECT could not be encoded (a line break in login, passcode, host or a
            # connect header), so nothing was written and the reader never started: close
            # the socket here, or it would leak, and forget the connection, whose unstarted
            # threads disconnect() could not join.
            transport.close()
            with self._lock:
                self._connection = None
                self._attempt = None
            raise
        except ConnectionClosed as error:
            attempt.fail(ConnectError(f"connection to {endpoint.url} lost during CONNECT: {error}"))
        connection.start()
        if not attempt.done.wait(max(deadline - time.monotonic(), 0.0)):
            attempt.fail(ConnectTimeout(f"no CONNECTED from {endpoint.url} within {seconds:g} s"))
        if attempt.error is not None:
            connection.abort(attempt.error)
            connection.ended.wait(max(deadline - time.monotonic(), 0.0) + 1.0)
            raise attempt.error
        assert attempt.frame is not None  # set with done when there is no error
        connection.start_heartbeats()
        return attempt.frame

    def disconnect(self, timeout: float = 5.0) -> None:
        """Send DISCONNECT with a receipt, wait for it at most ``timeout`` seconds, close,
        and join the client's threads. Never hangs, also when the connection is dead, and
        stops a reconnect in progress. Calling it again, or on a client that never
        connected, does nothing."""
        deadline = time.monotonic() + timeout
        with self._lock:
            if self._state in (ClientState.CLOSED, ClientState.DISCONNECTING):
                return
            self._state = ClientState.DISCONNECTING
            self._state_changed.notify_all()
            reconnector = self._reconnector
        self._stop_reconnecting.set()
        try:
            if (
                reconnector is not None
                and reconnector is not threading.current_thread()
                and reconnector.is_alive()
            ):
                opening = self._opening
                if opening is not None:
                    opening.abort()  # an attempt still in its handshake gives up now
                attempt = self._connection
                if attempt is not None:
                    attempt.abort()  # an attempt still waiting for CONNECTED gives up now
                reconnector.join(max(deadline - time.monotonic(), 0.05))
            connection = self._connection
            if connection is not None:
                if not connection.ended.is_set():
                    self._say_goodbye(connection, deadline)
                connection.join(deadline)
        finally:
            with self._lock:
                self._state = ClientState.CLOSED
                self._state_changed.notify_all()
                subscriptions = list(self._subscriptions.values())
                self._subscriptions.clear()
            for subscription in subscriptions:
                subscription._close(NotConnected("the client was disconnected"))

    def _say_goodbye(self, connection: Connection, deadline: float) -> None:
        connection.ending_requested = True
        receipt: Receipt | None = None
        try:
            receipt = self._perform(lambda s: s.disconnect(receipt=True), connection)
        except StompError as error:
            logger.debug("DISCONNECT not sent: %s", error)
        if connection.on_reader_thread:
            # Called from a listener: the reader cannot wait for itself; it ends after the
            # listener returns.
            connection.end_gracefully()
            return
        if receipt is not None:
            try:
                receipt.wait(max(deadline - time.monotonic(), 0.0))
            except StompError as error:
                logger.debug("no RECEIPT for DISCONNECT: %s", error)
        if not connection.ended.is_set():
            connection.end_gracefully()
            if not connection.ended.wait(max(min(deadline - time.monotonic(), 1.0), 0.05)):
                connection.abort()

    def __enter__(self) -> Client:
        self.connect()
        return self

    def __exit__(self, *_: object) -> None:
        self.disconnect()

    # -- messaging ---------------------------------------------------------------------------

    def send(
        self,
        destination: str,
        body: bytes | str = b"",
        *,
        headers: Headers | None = None,
        content_type: str | None = None,
        receipt: bool = False,
        transaction: str | None = None,
        content_length: bool = True,
    ) -> Receipt | None:
        """Send a message; returns a ``Receipt`` when ``receipt`` is true.

        ``content_length=False`` leaves the header out (ActiveMQ then delivers a
        TextMessage); a body containing NUL always needs it.
        """
        return self._perform(
            lambda s: s.send(
                destination,
                body,
                headers=headers,
                content_type=content_type,
                transaction=transaction,
                receipt=receipt,
                content_length=content_length,
            ),
        )

    def subscribe(
        self,
        destination: str,
        *,
        ack: str = "auto",
        headers: Headers | None = None,
        id: str | None = None,
        callback: Callable[[Frame], None] | None = None,
        receipt: bool = False,
        max_buffered: int = DEFAULT_MAX_BUFFERED,
    ) -> Subscription:
        """Subscribe; ``callback(frame)`` gets this subscription's messages.

        With ``receipt=True`` this returns once the broker confirmed the subscription.
        """
        if max_buffered < 1:
            raise UsageError(f"max_buffered must be at least 1, not {max_buffered}")
        created: list[Subscription] = []

        def build(session: ClientProtocol) -> Outgoing:
            info, outgoing = session.subscribe(
                destination, ack=ack, headers=headers, id=id, receipt=receipt
            )
            subscription = Subscription(
                self, info.id, destination, ack, info.headers, callback, max_buffered
            )
            self._subscriptions[info.id] = subscription
            created[:] = [subscription]
            return outgoing

        pending = self._perform(build)
        if pending is not None:
            pending.wait()
        return created[0]

    def unsubscribe(
        self,
        subscription: Subscription | str,
        *,
        receipt: bool = False,
        headers: Headers | None = None,
    ) -> Receipt | None:
        """Stop a subscription (given as the object or its id). ``headers`` for broker
        extensions: RabbitMQ deletes a durable subscription on ``durable:true``."""
        sub_id = subscription if isinstance(subscription, str) else subscription.id
        found = self._subscriptions.get(sub_id)
        result = self._perform(lambda s: s.unsubscribe(sub_id, receipt=receipt, headers=headers))
        self._subscriptions.pop(sub_id, None)
        if found is not None:
            found._close(NotConnected(f"subscription {sub_id} was unsubscribed"))
        return result

    def ack(
        self, frame: Frame, *, transaction: str | None = None, receipt: bool = False
    ) -> Receipt | None:
        """Acknowledge a MESSAGE with the headers the negotiated version needs."""
        return self._acknowledge(frame, True, transaction, receipt)

    def nack(
        self, frame: Frame, *, transaction: str | None = None, receipt: bool = False
    ) -> Receipt | None:
        """Reject a MESSAGE (not in STOMP 1.0)."""
        return self._acknowledge(frame, False, transaction, receipt)

    def _acknowledge(
        self, frame: Frame, positive: bool, transaction: str | None, receipt: bool = False
    ) -> Receipt | None:
        connection = self._live()
        acker = getattr(frame, "_acker", None)
        origin = acker.connection if isinstance(acker, _Acker) else connection
        if origin is not connection:
            raise ConnectionClosed(
                "this message came over a connection that has ended; the broker redelivers "
                "unacknowledged messages, so it cannot be acknowledged any more"
            )
        if positive:
            return self._perform(
                lambda s: s.ack(frame, transaction=transaction, receipt=receipt), connection
            )
        return self._perform(
            lambda s: s.nack(frame, transaction=transaction, receipt=receipt), connection
        )

    def begin(self, id: str | None = None) -> Transaction:
        """Begin a transaction."""
        created: list[Transaction] = []

        def build(session: ClientProtocol) -> Outgoing:
            tx_id, outgoing = session.begin(id)
            created[:] = [Transaction(self, tx_id)]
            self._transactions[tx_id] = created[0]
            return outgoing

        self._perform(build)
        return created[0]

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """``with client.transaction() as tx:`` commits on success, aborts on an exception."""
        with self.begin() as tx:
            yield tx

    def _end_transaction(self, tx: Transaction, command: str, receipt: bool) -> Receipt | None:
        if tx.lost is not None:
            raise ConnectionClosed(
                f"transaction {tx.id} was aborted by the broker when the connection ended "
                f"({tx.lost})"
            )

        def build(session: ClientProtocol) -> Outgoing:
            if command == "COMMIT":
                outgoing = session.commit(tx.id, receipt=receipt)
            else:
                outgoing = session.abort(tx.id, receipt=receipt)
            self._transactions.pop(tx.id, None)
            return outgoing

        return self._perform(build)
