"""The threaded STOMP client: the public facade over connections, sessions and listeners.

``Client`` wires collaborators together and owns none of their state:

* ``Lifecycle`` (lifecycle.py): the client's state, changed only through its transition
  table, and the current connection;
* ``Connection`` (connection.py): one transport, its sans-IO session and its threads; the
  session owns the live subscriptions, open transactions and pending receipts;
* ``Supervisor`` (supervisor.py): the reconnect thread, when a policy is given;
* ``Listeners`` (listener.py): the user's callbacks, called with no lock held.

The client keeps only maps from ids to the handles it gave out (``Subscription``,
``Transaction``), changed in the same locked step in which the session registers or
forgets the id; which ids are live is always the session's answer. What connections
report (events, their end) arrives here on their reader thread: this module turns it into
transitions first, then listener calls.
"""

from __future__ import annotations

import itertools
import logging
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
    HeartbeatTimeout,
    NotConnected,
    ReceiptTimeout,
    ReconnectFailed,
    StompError,
    UsageError,
)
from .frame import VERSIONS, Frame, Headers
from .handles import (
    DEFAULT_MAX_BUFFERED,
    DEFAULT_MAX_BUFFERED_BYTES,
    Message,
    Receipt,
    Subscription,
    Transaction,
)
from .lifecycle import ClientState, Lifecycle, Trigger
from .listener import Listener, Listeners, isolated
from .parser import DEFAULT_MAX_FRAME_SIZE
from .protocol import (
    ClientProtocol,
    Connected,
    ErrorReceived,
    Event,
    HeartbeatReceived,
    Lost,
    MessageReceived,
    Outgoing,
    ReceiptReceived,
    State,
    SubscriptionInfo,
)
from .reconnect import Reconnect
from .supervisor import Supervisor
from .transport import Endpoint, HandshakeGuard, open_transport, parse_url

if TYPE_CHECKING:
    import ssl  # only the type: sockets and TLS stay in the transports

__all__ = ["Client", "ClientState"]

logger = logging.getLogger("stompws.client")

# A close by the broker this soon (seconds) after an ERROR, with no answer in between to a
# frame sent after that ERROR, is the broker acting on the ERROR (RabbitMQ may first answer
# frames it had already read, as it does with the RECEIPT of a refused SUBSCRIBE). A later
# close is not blamed on it: ActiveMQ keeps a connection open after some ERRORs.
ERROR_ANSWER_WINDOW = 2.0

# RabbitMQ 3.10's Web STOMP refuses a SUBSCRIBE to a queue that no longer exists by closing
# the WebSocket (code 1000, "STOMP died") without the ERROR it sends over TCP. A broker
# answers frames in order, so the first resubscription left unanswered by the broker's own
# close is the one it refused; when the same one is at this many such closes in a row, it is
# taken as refused. A connection lost without a close frame (a network failure) never counts.
REFUSAL_STRIKES = 2
# Receipts a connection keeps at once: past that, the oldest ones whose wait() already timed
# out are given up (a broker that never answers must not grow the client without bound).
# Receipts nobody has given up on are never dropped: a burst of sends is no reason to fail.
MAX_PENDING_RECEIPTS = 10_000
_EVICTION_SCAN = 64  # how far from the oldest to look for a timed-out receipt
# Subscriptions not ours that are each warned of once; past that, every 1000th message.
_MAX_UNMATCHED_NAMED = 100


class _AlreadySubscribed(Exception):
    """Raised inside a build step: the id is live with the same destination and ack."""

    def __init__(self, subscription: Subscription) -> None:
        self.subscription = subscription


class Client:
    """A STOMP client over WebSocket (ws://, wss://) or TCP (stomp://, stomp+ssl://).

    See docs/guides/threading.md for the threading model. All arguments after the URL are
    keyword-only; ``url`` may also be a list of URLs, tried in order.
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
        source_address: tuple[str, int] | None = None,
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
        self._source_address = source_address
        self.connect_timeout = connect_timeout
        self.write_timeout = write_timeout
        self.receipt_timeout = receipt_timeout
        self._max_frame_size = max_frame_size

        self._listeners = Listeners()
        self._lifecycle = Lifecycle()
        # One counter for every session of this client: an id (subscription, transaction,
        # receipt) is never reused on a later connection.
        self._ids = itertools.count(1)
        self._subscriptions: dict[str, Subscription] = {}  # handles, by the session's ids
        # The subscription whose resubscription was the first left unanswered by the last
        # close(s), and at how many closes in a row (only connection_lost uses it).
        self._refusal_suspect: tuple[str, int] | None = None
        self._transactions: dict[str, Transaction] = {}  # handles, by the session's ids
        self._supervisor = (
            Supervisor(reconnect, self._reconnect_once, self._gave_up) if reconnect else None
        )
        self._unmatched_seen: set[str] = set()  # subscriptions not ours, already warned of
        self._unmatched_more = 0  # messages for unknown subscriptions past that set's bound
        self._endpoint: Endpoint = self._endpoints[0]

    def __repr__(self) -> str:
        return f"<stompws.Client {self._endpoint.url} {self._lifecycle.state.value}>"

    # -- properties --------------------------------------------------------------------------

    @property
    def state(self) -> ClientState:
        """Where the client is in its life (``ClientState``): a snapshot, which another
        thread (the reader, the reconnect supervisor) may change a moment later."""
        return self._lifecycle.state

    @property
    def is_connected(self) -> bool:
        """True exactly when the current connection has its CONNECTED and has not ended."""
        state, connection = self._lifecycle.snapshot()
        return (
            state is ClientState.CONNECTED
            and connection is not None
            and not connection.closing
            and connection.protocol.state is State.CONNECTED
        )

    @property
    def url(self) -> str:
        """The URL of the current (or last) connection, without credentials."""
        return self._endpoint.url

    @property
    def version(self) -> str | None:
        """The STOMP version the broker agreed on ("1.0", "1.1", "1.2"), of the current
        (or last) connection; None before the first CONNECTED."""
        connection = self._lifecycle.connection
        return connection.protocol.version if connection else None

    @property
    def server(self) -> str | None:
        """The broker's ``server`` header from CONNECTED (None when it sent none, or before
        the first CONNECTED)."""
        connection = self._lifecycle.connection
        return connection.protocol.server if connection else None

    @property
    def session(self) -> str | None:
        """The broker's ``session`` header from CONNECTED (None when it sent none, or
        before the first CONNECTED)."""
        connection = self._lifecycle.connection
        return connection.protocol.session if connection else None

    @property
    def subscriptions(self) -> list[Subscription]:
        """The live subscriptions (a copy): those a reconnect repeats."""
        return list(self._subscriptions.values())

    @property
    def transactions(self) -> list[Transaction]:
        """The transactions begun and not yet committed or aborted (a copy)."""
        return list(self._transactions.values())

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener``'s ``on_*`` methods from now on, after the listeners added
        before it; safe from any thread, a listener's own callbacks included."""
        self._listeners.add(listener)

    def remove_listener(self, listener: Listener) -> None:
        """Stop calling ``listener`` (a call already under way finishes); no other listener
        misses an event because of it, even when it removes itself during a callback."""
        self._listeners.remove(listener)

    # -- connecting --------------------------------------------------------------------------

    def connect(self, timeout: float | None = None) -> Frame:
        """Connect and return the broker's CONNECTED frame.

        ``timeout`` (default ``connect_timeout``) covers TCP, TLS, the WebSocket handshake
        and CONNECTED, for each URL in turn. Raises ``ConnectTimeout``, ``BrokerError`` (the
        broker answered ERROR, e.g. bad credentials) or ``ConnectError``. A connection lost
        after its CONNECTED arrived is handled like any later loss (reconnect, or
        DISCONNECTED): ``connect()`` still returns the frame.
        """
        if self._lifecycle.fire(Trigger.CONNECT) is None:
            state = self._lifecycle.state
            if state in (ClientState.CLOSED, ClientState.DISCONNECTING):
                raise UsageError("this client was disconnected; create a new Client")
            raise UsageError(f"connect() on a client that is {state.value}")
        seconds = self.connect_timeout if timeout is None else timeout
        failures: list[StompError] = []
        try:
            for endpoint in self._endpoints:
                try:
                    return self._attempt(endpoint, seconds, ())
                except (ConnectError, BrokerError) as error:
                    failures.append(error)
                if self._lifecycle.state is not ClientState.CONNECTING:
                    break  # disconnect() came: no more URLs
        finally:
            if self._lifecycle.state is ClientState.CONNECTING:
                self._lifecycle.fire(Trigger.ATTEMPTS_FAILED)
        if self._lifecycle.state in (ClientState.DISCONNECTING, ClientState.CLOSED):
            raise ConnectError("disconnect() was called while connecting") from failures[-1]
        if len(failures) == 1:
            raise failures[0]
        summary = "; ".join(str(error) for error in failures)
        raise failures[-1].__class__(f"no URL could be connected: {summary}") from failures[-1]

    def _attempt(
        self, endpoint: Endpoint, seconds: float, inherited: tuple[SubscriptionInfo, ...]
    ) -> Frame:
        """One connection attempt to ``endpoint``: its CONNECTED frame, or why not."""
        deadline = time.monotonic() + seconds
        self._endpoint = endpoint
        self._listeners.call("on_connecting", endpoint.url)
        guard = HandshakeGuard(seconds)
        if self._lifecycle.fire(Trigger.OPENING, guard=guard) is None:
            refused = ConnectError(f"not connecting to {endpoint.url}: disconnect() was called")
            self._listeners.call("on_disconnected", refused)  # every on_connecting has its end
            raise refused
        try:
            connection = self._open(endpoint, guard, inherited)
        finally:
            self._lifecycle.attempt_over()
        attempt = connection.attempt
        if not attempt.settled.wait(max(deadline - time.monotonic(), 0.0)):
            attempt.fail(ConnectTimeout(f"no CONNECTED from {endpoint.url} within {seconds:g} s"))
        if attempt.error is not None:
            connection.abort(attempt.error)
            if not connection.on_reader_thread:
                connection.ended.wait(max(deadline - time.monotonic(), 0.0) + 1.0)
            raise attempt.error
        assert attempt.frame is not None  # set with done when there is no error
        return attempt.frame

    def _open(
        self, endpoint: Endpoint, guard: HandshakeGuard, inherited: tuple[SubscriptionInfo, ...]
    ) -> Connection:
        """Open the transport, write CONNECT and start the reader: the attempt's connection,
        made current (OPENED) unless disconnect() came first."""
        try:
            transport = open_transport(
                endpoint,
                guard=guard,
                ssl_context=self._ssl_context,
                ws_headers=self._ws_headers,
                versions=self._versions,
                write_timeout=self.write_timeout,
                source_address=self._source_address,
            )
        except StompError as error:
            self._listeners.call("on_disconnected", error)
            raise
        except Exception as error:  # nothing outside the error tree leaves connect()
            failure = ConnectError(f"connection to {endpoint.url} failed: {error!r}")
            failure.__cause__ = error
            self._listeners.call("on_disconnected", failure)
            raise failure from error
        protocol = ClientProtocol(
            versions=self._versions,
            heartbeats=self._heartbeats,
            heartbeat_tolerance=self._heartbeat_tolerance,
            max_frame_size=self._max_frame_size,
            ids=self._ids,
            subscriptions=inherited,
        )
        connection = Connection(transport, protocol, self, write_timeout=self.write_timeout)
        login = self._login if self._login is not None else endpoint.login
        passcode = self._passcode if self._passcode is not None else endpoint.passcode
        # CONNECT goes out before the reader starts, so that a peer closing at once cannot
        # close the session under it; a failed write is reported by the reader, which then
        # finds the connection aborted.
        try:
            outgoing: Outgoing | None = connection.perform(
                lambda session: session.connect(
                    login=login, passcode=passcode, host=self._host, headers=self._connect_headers
                )
            )
        except UsageError:
            # The CONNECT could not be encoded (a line break in login, passcode, host or a
            # connect header): nothing was written and no thread started.
            transport.close()
            raise
        except ConnectionClosed as error:
            outgoing = None
            connection.attempt.fail(
                ConnectError(f"connection to {endpoint.url} lost during CONNECT: {error}")
            )
        # Before the reader starts: whatever the broker answers (an ERROR and a close can
        # come at once) must reach the listeners after the CONNECT it answers.
        if outgoing is not None:
            self._listeners.call("on_send", outgoing.frame)
        if self._lifecycle.fire(Trigger.OPENED, connection) is None:
            transport.close()
            refused = ConnectError(f"not connecting to {endpoint.url}: disconnect() was called")
            self._listeners.call("on_disconnected", refused)
            raise refused
        connection.start()
        return connection

    def disconnect(
        self, timeout: float = 5.0, *, headers: Headers | None = None, receipt: str | None = None
    ) -> None:
        """Send DISCONNECT with a receipt (``receipt`` names it; one of the client's own
        otherwise), wait for it at most ``timeout`` seconds, close, and join the client's
        threads.

        Never hangs, also when the connection is dead or a write is blocked (the connection
        is aborted at the deadline), and wins over a connect or reconnect in flight, from
        any thread. Calling it again, or on a client that never connected, does nothing.
        From a listener (the reader thread), it returns without waiting: the reader ends
        right after that listener returns.
        """
        deadline = time.monotonic() + timeout
        lifecycle = self._lifecycle
        transition = lifecycle.fire(Trigger.DISCONNECT)
        if transition is None:
            if not self._on_client_thread():
                lifecycle.wait_for(ClientState.CLOSED, deadline)
            return
        try:
            if self._supervisor is not None:
                self._supervisor.stop()
            guard = lifecycle.guard
            if guard is not None:
                guard.abort()  # a handshake in flight gives up now
            current = transition.connection
            if current is not None and current.protocol.state is not State.CONNECTED:
                current.abort()  # an attempt still waiting for CONNECTED gives up now
            if not self._on_client_thread():
                lifecycle.wait_for_attempts(deadline)
            connection = lifecycle.connection  # final: no attempt can open another now
            if connection is not None:
                if connection.protocol.state is State.CONNECTED and not connection.closing:
                    self._say_goodbye(connection, deadline, headers, receipt)
                elif not connection.ended.is_set():
                    connection.abort()
                connection.join(deadline)
            if self._supervisor is not None:
                self._supervisor.join(deadline)
        finally:
            lifecycle.fire(Trigger.CLOSED)
            self._end_handles(NotConnected("the client was disconnected"), failed=False)

    def _on_client_thread(self) -> bool:
        """Whether the caller is one of this client's threads (a listener, a callback)."""
        connection = self._lifecycle.connection
        on_reader = connection is not None and connection.on_reader_thread
        return on_reader or (self._supervisor is not None and self._supervisor.on_supervisor_thread)

    def _say_goodbye(
        self, connection: Connection, deadline: float, headers: Headers | None, name: str | None
    ) -> None:
        connection.ending_requested = True
        receipt: Receipt | None = None
        try:
            receipt = self._perform_on(
                connection, lambda s: s.disconnect(receipt=name or True, headers=headers), deadline
            )
        except StompError as error:
            logger.debug("DISCONNECT not sent: %s", error)
        if connection.on_reader_thread:
            # Called from a listener: the reader cannot wait for itself; it ends after the
            # listener returns.
            connection.end_gracefully(deadline)
            return
        if receipt is not None:
            try:
                receipt.wait(max(deadline - time.monotonic(), 0.0))
            except StompError as error:
                logger.debug("no RECEIPT for DISCONNECT: %s", error)
        if not connection.ended.is_set():
            connection.end_gracefully(deadline)
            if not connection.ended.wait(max(min(deadline - time.monotonic(), 1.0), 0.05)):
                connection.abort()

    def _end_handles(self, reason: StompError, *, failed: bool) -> None:
        subscriptions = list(self._subscriptions.values())
        self._subscriptions.clear()
        for tx in self._transactions.values():
            if tx.lost is None:
                tx.lost = reason
        self._transactions.clear()
        for subscription in subscriptions:
            subscription._close(reason, failed=failed)

    def __enter__(self) -> Client:
        self.connect()
        return self

    def __exit__(self, *_: object) -> None:
        self.disconnect()

    # -- reconnecting (called by the supervisor) ----------------------------------------------

    def _reconnect_once(self) -> BaseException | None:
        """Try every URL once: None when connected again (or no longer wanted), else why not."""
        state, lost = self._lifecycle.snapshot()
        if state is not ClientState.RECONNECTING:
            return None
        inherited = tuple(lost.protocol.subscriptions.values()) if lost is not None else ()
        last: BaseException | None = None
        for endpoint in self._endpoints:
            if self._lifecycle.state is not ClientState.RECONNECTING:
                return None
            logger.info("reconnecting to %s", endpoint.url)
            try:
                self._attempt(endpoint, self.connect_timeout, inherited)
                return None
            except StompError as error:
                last = error
                logger.info("reconnect to %s failed: %s", endpoint.url, error)
        return last if self._lifecycle.state is ClientState.RECONNECTING else None

    def _gave_up(self, tries: int, last: BaseException | None) -> None:
        if self._lifecycle.fire(Trigger.GAVE_UP) is None:
            return
        error = ReconnectFailed(f"gave up reconnecting after {tries} attempts: {last}")
        error.__cause__ = last
        logger.warning("%r: %s", self, error)
        self._end_handles(error, failed=True)
        self._listeners.call("on_disconnected", error)

    # -- what connections report (on their reader thread, no lock held) -----------------------

    def connection_events(self, connection: Connection, events: list[Event]) -> None:
        """Internal (the ``Connection`` handler protocol): what one read brought, on the
        reader thread, in order."""
        listeners = self._listeners
        only_heartbeats = True
        for event in events:
            kind = type(event)
            if kind is MessageReceived:
                only_heartbeats = False
                self._deliver(connection, event)  # type: ignore[arg-type]
            elif kind is HeartbeatReceived:
                pass  # RabbitMQ ends every frame with an EOL: not an answer to an ERROR
            elif kind is ReceiptReceived:
                only_heartbeats = False
                self._on_receipt(connection, event)  # type: ignore[arg-type]
            elif kind is ErrorReceived:
                only_heartbeats = False
                self._on_error(connection, event)  # type: ignore[arg-type]
            elif kind is Connected:
                only_heartbeats = False
                self._on_connected(connection, event)  # type: ignore[arg-type]
        if only_heartbeats:
            for _ in events:
                listeners.call("on_heartbeat")

    def _on_connected(self, connection: Connection, event: Connected) -> None:
        if self._lifecycle.fire(Trigger.ESTABLISHED, connection) is None:
            connection.attempt.fail(
                ConnectError("disconnect() was called before the broker's CONNECTED arrived")
            )
            return
        connection.attempt.succeed(event.frame)
        if logger.isEnabledFor(logging.INFO):
            headers = event.frame.headers
            logger.info(
                "connected to %s: STOMP %s, session %s, server %s, heart-beats %s",
                connection.transport.endpoint.url,
                event.version,
                headers.get("session", "(none)"),
                headers.get("server", "(not named)"),
                _heartbeats_text(event),
            )
        self._listeners.call("on_connected", event.frame)

    def _on_receipt(self, connection: Connection, event: ReceiptReceived) -> None:
        doubted: list[Receipt] = []
        with connection.lock:
            receipt = connection.receipts.pop(event.receipt_id, None)
            in_doubt = (
                receipt is not None
                and connection.unanswered_error is not None
                and receipt.ticket <= connection.error_mark
            )
            if receipt is not None and in_doubt:
                # Its frame went out before the ERROR (which named no frame) arrived, and
                # brokers answer a frame's receipt header even when the frame failed
                # (RabbitMQ: ERROR, then RECEIPT, then the close): the ERROR may be its.
                connection.doubted.append(receipt)
            elif receipt is not None and receipt.ticket > connection.error_mark:
                # The broker answered a frame sent after its last ERROR arrived: that
                # ERROR did not end the connection, nor was it about those in doubt.
                connection.unanswered_error = None
                doubted, connection.doubted = connection.doubted, []
        for earlier in doubted:
            earlier.confirm()
        if receipt is not None:
            if in_doubt:
                receipt.received_in_doubt(event.frame, connection.error_at + ERROR_ANSWER_WINDOW)
            else:
                receipt.succeed(event.frame)
        self._listeners.call("on_receipt", event.frame)

    def _refused(self, connection: Connection, receipt: Receipt, error: BrokerError) -> None:
        """The broker refused ``receipt``'s frame: a refused SUBSCRIBE is no subscription
        (not made again after a reconnect, its handle ended with the error)."""
        if not receipt.fail(error) or receipt.subscription_id is None:
            return
        self._end_subscription(connection, receipt.subscription_id, error)

    def _end_subscription(self, connection: Connection, sub_id: str, error: StompError) -> None:
        """The broker will not serve ``sub_id``: forgotten by the session (not made again on
        a reconnect), out of ``subscriptions``, its handle ended with ``error``."""
        with connection.lock:
            connection.protocol.forget_subscription(sub_id)
            subscription = self._subscriptions.pop(sub_id, None)
        if subscription is not None:
            subscription._close(error, failed=True)

    def _deliver(self, connection: Connection, event: MessageReceived) -> None:
        frame = Message.received(event.frame, self, connection)
        listeners = self._listeners
        listeners.call("on_message", frame)
        info = event.subscription
        subscription = self._subscriptions.get(info.id) if info is not None else None
        if subscription is None:
            if not listeners.handle_message():
                self._unmatched(frame)
            return
        with subscription.handing_over:
            if not subscription.active:
                return  # unsubscribe() ran since the lookup above, and has returned or waits
            if subscription.callback is not None:
                isolated(subscription.callback, frame, listeners)
            else:
                subscription._deliver(frame, connection)

    def _unmatched(self, frame: Frame) -> None:
        # Nobody receives a message for a subscription this client did not make (a RabbitMQ
        # /temp-queue/ reply, a subscription already ended): say so, once per subscription,
        # for the first few; a broker inventing ids must not grow a set or flood the log.
        name = frame.headers.get("subscription", "")
        if name in self._unmatched_seen:
            return
        if len(self._unmatched_seen) < _MAX_UNMATCHED_NAMED:
            self._unmatched_seen.add(name)
        else:
            self._unmatched_more += 1
            if self._unmatched_more % 1000 != 1:
                return
        logger.warning(
            "%r: MESSAGE for subscription %r, which this client did not make, reached no "
            "listener; add a Listener with on_message to receive such messages (RabbitMQ "
            "delivers /temp-queue/ replies this way)%s",
            self,
            name,
            f" ({self._unmatched_more} such messages for other unknown subscriptions)"
            if self._unmatched_more
            else "",
        )

    def _on_error(self, connection: Connection, event: ErrorReceived) -> None:
        """An ERROR fails exactly what it names: its receipt, else the connect attempt, and
        a subscription the broker cancelled; if the connection ends before anything else
        arrives, it is the reason of that end."""
        error = BrokerError(event.frame)
        logger.warning("%r: %s", self, error)
        if event.receipt_id is not None:
            with connection.lock:
                receipt = connection.receipts.pop(event.receipt_id, None)
            if receipt is not None:
                self._refused(connection, receipt, error)
        elif not connection.attempt.settled.is_set():
            connection.attempt.fail(error)
        with connection.lock:
            connection.unanswered_error = error
            connection.error_mark = connection.next_ticket - 1
            connection.error_at = time.monotonic()
        ended = event.ended_subscription
        if ended is not None:
            logger.warning(
                "%r: subscription %s to %s ended by the broker", self, ended.id, ended.destination
            )
            self._end_subscription(connection, ended.id, error)
        self._listeners.call("on_error", event.frame)

    def connection_heartbeat_timeout(self, connection: Connection) -> None:
        """Internal (the ``Connection`` handler protocol): the broker fell silent."""
        self._listeners.call("on_heartbeat_timeout")

    def connection_lost(
        self, connection: Connection, reason: BaseException | None, lost: Lost
    ) -> None:
        """Internal (the ``Connection`` handler protocol): ``connection`` ended, for
        ``reason`` (None when asked to); ``lost`` is what the session had in flight."""
        error = connection.unanswered_error
        with connection.lock:
            doubted, connection.doubted = connection.doubted, []
        if (
            isinstance(reason, ConnectionClosed)
            and not isinstance(reason, HeartbeatTimeout)
            and error is not None
            and time.monotonic() - connection.error_at <= ERROR_ANSWER_WINDOW
        ):
            reason = error  # the broker closed in answer to its ERROR
            for receipt in doubted:
                # Answered in the same breath as that ERROR: it may well be what it refused.
                self._refused(connection, receipt, error)
        else:
            for receipt in doubted:
                receipt.confirm()
        failure: StompError = (
            reason
            if isinstance(reason, StompError)
            else ConnectionClosed("the client disconnected")
            if reason is None
            else ConnectionClosed(f"connection failed: {reason!r}")
        )
        if failure is not reason and reason is not None:
            failure.__cause__ = reason
        # Each pending receipt fails as "the connection ended": an ERROR that named another
        # frame says nothing about these.
        unanswered = (
            failure
            if isinstance(failure, ConnectionClosed)
            else ConnectionClosed(f"the connection ended before the RECEIPT came: {failure}")
        )
        if unanswered is not failure:
            unanswered.__cause__ = failure
        with connection.lock:
            unanswered_resubscription = next(
                (r for r in connection.resubscriptions if r.id in connection.receipts), None
            )
            receipts = [
                connection.receipts.pop(rid)
                for rid in lost.pending_receipts
                if rid in connection.receipts
            ]
            receipts += connection.receipts.values()
            connection.receipts.clear()
        for receipt in receipts:
            receipt.fail(unanswered)
        self._judge_resubscriptions(connection, reason, unanswered_resubscription, failure)
        for tx_id in lost.open_transactions:
            tx = self._transactions.get(tx_id)
            if tx is not None and tx.session is connection.protocol:
                tx.lost = failure
                del self._transactions[tx_id]
        attempt = connection.attempt
        if not attempt.settled.is_set():
            if isinstance(failure, (BrokerError, ConnectError)):
                attempt.fail(failure)
            else:
                refused = ConnectError(f"{connection.transport.endpoint.url}: {failure}")
                refused.__cause__ = failure  # a ProtocolError stays visible to the caller
                attempt.fail(refused)
        retry = self._supervisor is not None and not connection.ending_requested
        transition = self._lifecycle.fire(Trigger.LOST_RETRY if retry else Trigger.LOST, connection)
        url = connection.transport.endpoint.url
        if reason is None:
            logger.info("disconnected from %s", url)
        elif attempt.frame is not None:  # it had been established
            then = "reconnecting" if retry else "not reconnecting"
            logger.info("connection to %s lost (%s): %s", url, then, failure)
        if transition is not None and transition.after is ClientState.DISCONNECTED:
            self._end_handles(failure, failed=True)
        self._listeners.call("on_disconnected", reason)
        if (
            self._supervisor is not None
            and transition is not None
            and transition.before is ClientState.CONNECTED
            and transition.after is ClientState.RECONNECTING
        ):
            # After on_disconnected, so that listeners see this loss before the next attempt.
            self._supervisor.ensure_running()

    def _judge_resubscriptions(
        self,
        connection: Connection,
        reason: BaseException | None,
        first_unanswered: Receipt | None,
        failure: StompError,
    ) -> None:
        """At the end of ``connection``: end the subscription whose resubscription the
        broker keeps answering with a close (REFUSAL_STRIKES), so that the next reconnect
        goes on without it instead of being closed again, and again."""
        suspect = None
        closed_by_broker = isinstance(reason, ConnectionClosed) and reason.code is not None
        if closed_by_broker and first_unanswered is not None:
            suspect = first_unanswered.subscription_id
        previous, self._refusal_suspect = self._refusal_suspect, None
        if suspect is None:
            return
        strikes = previous[1] + 1 if previous is not None and previous[0] == suspect else 1
        if strikes < REFUSAL_STRIKES:
            self._refusal_suspect = (suspect, strikes)
            return
        with connection.lock:
            info = connection.protocol.subscriptions.get(suspect)
        destination = info.destination if info is not None else "?"
        error = ConnectionClosed(
            f"the broker refuses subscription {suspect} to {destination}: {strikes} times in "
            f"a row it closed the connection right after that SUBSCRIBE, without answering "
            f"it ({failure}); it is not made again"
        )
        error.__cause__ = failure
        logger.warning("%r: %s", self, error)
        self._end_subscription(connection, suspect, error)

    # -- how an operation reaches the wire ----------------------------------------------------

    def _live(self) -> Connection:
        """The live connection; while reconnecting, waits up to ``connect_timeout`` for it."""
        state, current = self._lifecycle.snapshot()
        if state is ClientState.RECONNECTING:
            if self._on_client_thread():
                # A listener: the reconnect cannot finish while it waits here.
                raise NotConnected("the connection was lost; reconnecting")
            deadline = time.monotonic() + self.connect_timeout
            state = self._lifecycle.wait_while(ClientState.RECONNECTING, deadline)
            if state is ClientState.RECONNECTING:
                raise NotConnected(
                    f"still reconnecting after {self.connect_timeout:g} s (connect_timeout)"
                )
            state, current = self._lifecycle.snapshot()
        if state is not ClientState.CONNECTED or current is None:
            raise NotConnected(f"the client is {state.value}, not connected")
        if current.ended.is_set():
            raise NotConnected(f"the connection has ended: {current.reason}")
        return current

    def _perform(
        self,
        build: Callable[[ClientProtocol], Outgoing],
        connection: Connection | None = None,
    ) -> Receipt | None:
        """Build and write a frame on ``connection``, or on the live connection.

        On the live connection, a session found already closed (the loss is known to the
        session but not yet to the client; nothing was written) is tried once more after
        the loss is handled: with reconnect, on the next connection.
        """
        if connection is not None:
            return self._perform_on(connection, build)
        live = self._live()
        try:
            return self._perform_on(live, build)
        except NotConnected:
            if live.protocol.state is not State.CLOSED or live.on_reader_thread:
                raise
            live.ended.wait(self.connect_timeout)
            return self._perform_on(self._live(), build)

    def _perform_on(
        self,
        connection: Connection,
        build: Callable[[ClientProtocol], Outgoing],
        deadline: float | None = None,
    ) -> Receipt | None:
        registered: list[Receipt] = []

        def build_and_register(session: ClientProtocol) -> Outgoing:
            outgoing = build(session)
            if outgoing.receipt_id is not None:
                # Under the connection's lock and before the write: the RECEIPT cannot
                # arrive before its waiter exists.
                command = outgoing.frame.command
                receipt = Receipt(
                    outgoing.receipt_id,
                    command,
                    connection,
                    self.receipt_timeout,
                    outgoing.frame.headers["id"] if command == "SUBSCRIBE" else None,
                )
                receipt.ticket = connection.next_ticket
                connection.receipts[outgoing.receipt_id] = receipt
                registered.append(receipt)
                if len(connection.receipts) > MAX_PENDING_RECEIPTS:
                    self._forget_a_timed_out_receipt(connection, session)
            return outgoing

        outgoing = connection.perform(build_and_register, deadline)
        if self._listeners:
            self._listeners.call("on_send", outgoing.frame)
        return registered[0] if registered else None

    @staticmethod
    def _forget_a_timed_out_receipt(connection: Connection, session: ClientProtocol) -> None:
        """Under the connection's lock: drop the oldest pending receipt whose wait() timed
        out (it fails with ReceiptTimeout for good); none when no such receipt is near the
        front."""
        for receipt_id, receipt in itertools.islice(connection.receipts.items(), _EVICTION_SCAN):
            if receipt.timed_out:
                session.forget_receipt(receipt_id)
                del connection.receipts[receipt_id]
                receipt.fail(
                    ReceiptTimeout(
                        f"RECEIPT {receipt_id} given up: its wait timed out and more than "
                        f"{MAX_PENDING_RECEIPTS} receipts were pending (the broker is not "
                        "answering)"
                    )
                )
                return

    def refuse_on_reader(self, what: str) -> None:
        """Internal: raise ``UsageError`` when called on a thread that delivers messages,
        for a call (``what``) that would wait for that very thread."""
        if self._on_client_thread():
            raise UsageError(
                f"cannot {what} inside a listener or callback: the reader thread that "
                "delivers messages is the one that would wait"
            )

    # -- messaging ---------------------------------------------------------------------------

    def send(
        self,
        destination: str,
        body: bytes | str = b"",
        *,
        headers: Headers | None = None,
        content_type: str | None = None,
        receipt: bool | str = False,
        transaction: str | None = None,
        content_length: bool = True,
    ) -> Receipt | None:
        """Send a message; returns a ``Receipt`` when ``receipt`` is true (or an id).

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
        receipt: bool | str = False,
        max_buffered: int = DEFAULT_MAX_BUFFERED,
        overflow: str = "block",
        max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES,
    ) -> Subscription:
        """Subscribe; ``callback(frame)`` gets this subscription's messages.

        With ``receipt`` this returns once the broker confirmed the subscription. An ``id``
        that is already live for the same destination and ack mode returns that
        subscription and puts nothing on the wire (subscribing in ``on_connected`` stays
        right across reconnects, which repeat every subscription themselves); for another
        destination or ack mode it raises ``UsageError``. ``overflow``: what a full buffer
        does (``Subscription``).
        """
        # Checked before anything goes on the wire.
        Subscription(
            self, "", destination, ack, (), callback, max_buffered, overflow, max_buffered_bytes
        )
        created: list[Subscription] = []

        def build(session: ClientProtocol) -> Outgoing:
            live = session.subscriptions.get(id) if id is not None else None
            if live is not None:
                existing = self._subscriptions.get(live.id)
                if (
                    existing is not None
                    and live.destination == destination
                    and live.ack == ack
                    and callback in (None, existing.callback)
                ):
                    raise _AlreadySubscribed(existing)
                raise UsageError(
                    f"subscription id {id!r} is already live for {live.destination} "
                    f"(ack {live.ack}); unsubscribe it first, or choose another id"
                )
            info, outgoing = session.subscribe(
                destination, ack=ack, headers=headers, id=id, receipt=receipt
            )
            subscription = Subscription(
                self,
                info.id,
                destination,
                ack,
                info.headers,
                callback,
                max_buffered,
                overflow,
                max_buffered_bytes,
            )
            self._subscriptions[info.id] = subscription
            created[:] = [subscription]
            return outgoing

        try:
            pending = self._perform(build)
        except _AlreadySubscribed as already:
            return already.subscription
        if pending is not None:
            pending.wait()
        return created[0]

    def unsubscribe(
        self,
        subscription: Subscription | str,
        *,
        receipt: bool | str = False,
        headers: Headers | None = None,
    ) -> Receipt | None:
        """Stop a subscription (given as the object or its id). ``headers`` for broker
        extensions: RabbitMQ deletes a durable subscription on ``durable:true``.

        Once it returns, the subscription's callback is not called any more (a call under
        way on the reader thread is waited for, at most ``receipt_timeout``, unless this
        runs on the reader thread itself) and its buffer gets nothing more. Messages the
        broker sent before it read the UNSUBSCRIBE still reach listeners' ``on_message``,
        which sees every MESSAGE frame."""
        sub_id = subscription if isinstance(subscription, str) else subscription.id
        ended: list[Subscription] = []

        def build(session: ClientProtocol) -> Outgoing:
            outgoing = session.unsubscribe(sub_id, receipt=receipt, headers=headers)
            found = self._subscriptions.pop(sub_id, None)
            if found is not None:
                ended.append(found)
            return outgoing

        result = self._perform(build)
        for found in ended:
            found._close(NotConnected(f"subscription {sub_id} was unsubscribed"), failed=False)
            if not self._on_client_thread():
                # A callback under way ends before this returns: none runs afterwards.
                # (The reader is never inside another callback while it calls this one.)
                found._wait_for_hand_over(self.receipt_timeout)
        return result

    def ack(
        self,
        frame: Frame,
        *,
        transaction: str | None = None,
        receipt: bool | str = False,
        headers: Headers | None = None,
    ) -> Receipt | None:
        """Acknowledge a MESSAGE with the headers the negotiated version needs."""
        return self.acknowledge(
            frame, True, transaction=transaction, receipt=receipt, headers=headers
        )

    def nack(
        self,
        frame: Frame,
        *,
        transaction: str | None = None,
        receipt: bool | str = False,
        headers: Headers | None = None,
    ) -> Receipt | None:
        """Reject a MESSAGE (not in STOMP 1.0)."""
        return self.acknowledge(
            frame, False, transaction=transaction, receipt=receipt, headers=headers
        )

    def acknowledge(
        self,
        frame: Frame,
        positive: bool,
        *,
        transaction: str | None = None,
        receipt: bool | str = False,
        headers: Headers | None = None,
    ) -> Receipt | None:
        """ACK (``positive``) or NACK ``frame``, on the connection it came over."""
        connection = self._live()
        origin = frame.origin if isinstance(frame, Message) else connection
        if origin is not connection:
            raise ConnectionClosed(
                "this message came over a connection that has ended; the broker redelivers "
                "unacknowledged messages, so it cannot be acknowledged any more"
            )
        if positive:
            return self._perform(
                lambda s: s.ack(frame, transaction=transaction, receipt=receipt, headers=headers),
                connection,
            )
        return self._perform(
            lambda s: s.nack(frame, transaction=transaction, receipt=receipt, headers=headers),
            connection,
        )

    def begin(
        self,
        id: str | None = None,
        *,
        receipt: bool | str = False,
        headers: Headers | None = None,
    ) -> Transaction:
        """Begin a transaction on the live connection (it cannot outlive that connection)."""
        created: list[Transaction] = []

        def build(session: ClientProtocol) -> Outgoing:
            tx_id, outgoing = session.begin(id, receipt=receipt, headers=headers)
            created[:] = [Transaction(self, tx_id, session)]
            self._transactions[tx_id] = created[0]
            return outgoing

        self._perform(build)
        return created[0]

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """``with client.transaction() as tx:`` commits on success, aborts on an exception."""
        with self.begin() as tx:
            yield tx

    def is_open(self, tx: Transaction) -> bool:
        """Internal (for ``Transaction``): whether ``tx`` is still begun here."""
        return self._transactions.get(tx.id) is tx

    def end_transaction(
        self,
        tx: Transaction,
        command: str,
        receipt: bool | str,
        headers: Headers | None,
    ) -> Receipt | None:
        """Internal (for ``Transaction.commit``/``abort``): send COMMIT or ABORT
        (``command``); ``ConnectionClosed`` when the connection it was begun on ended."""
        if tx.lost is not None:
            raise ConnectionClosed(
                f"transaction {tx.id} was aborted by the broker when the connection ended "
                f"({tx.lost})"
            )
        connection = self._lifecycle.connection
        if connection is None or connection.protocol is not tx.session:
            raise ConnectionClosed(
                f"transaction {tx.id} was begun on a connection that has ended; the broker "
                "aborted it there"
            )

        def build(session: ClientProtocol) -> Outgoing:
            if command == "COMMIT":
                outgoing = session.commit(tx.id, receipt=receipt, headers=headers)
            else:
                outgoing = session.abort(tx.id, receipt=receipt, headers=headers)
            self._transactions.pop(tx.id, None)
            return outgoing

        return self._perform(build, connection)


def _heartbeats_text(event: Connected) -> str:
    """The negotiated heart-beats, for the log."""
    sending = f"sent every {event.send_interval:g} s" if event.send_interval else "none sent"
    expected = (
        f"broker dead after {event.receive_timeout:g} s of silence"
        if event.receive_timeout
        else "none expected"
    )
    return f"{sending}, {expected}"
