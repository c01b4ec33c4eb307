"""Connections shaped like stomp.py 9's, each driving one ``stompws.Client``.

A compat connection keeps what stomp.py keeps between calls (the named listeners, the TLS
settings, the open transactions) and makes a new ``Client`` for each ``connect()``, since a
stomp.py connection can connect again after ``disconnect()`` and a ``Client`` cannot.

Where the behaviour differs from stomp.py on purpose (see the package docstring): every wait
is bounded, ``connect()`` always returns connected or raises, ``disconnect()`` waits for its
RECEIPT at most ``disconnect_timeout`` seconds, and a listener that raises does not drop the
connection.
"""

from __future__ import annotations

import itertools
import logging
import ssl
import threading
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from ..client import Client
from ..errors import BrokerError, ConnectError, UsageError
from ..frame import Frame as NativeFrame
from ..handles import Transaction
from ..reconnect import Reconnect
from .dispatch import Dispatcher
from .exception import ConnectFailedException, NotConnectedException
from .headers import as_pairs, ignore, merge, translated
from .hosts import HostAndPort, ordered, urls_for
from .tls import DEFAULT_SSL_VERSION, SslParams
from .transport import Transport, negotiated_heartbeats

__all__ = ["BaseConnection"]

logger = logging.getLogger("stompws.compat")


class BaseConnection:
    """What the compat connections share; use ``Connection``, ``Connection10/11/12`` or
    ``WSConnection``."""

    version = "1.1"
    _websocket = False

    def __init__(
        self,
        host_and_ports: Sequence[HostAndPort | str] | None = None,
        prefer_localhost: bool = True,
        try_loopback_connect: bool = True,
        reconnect_sleep_initial: float = 0.1,
        reconnect_sleep_increase: float = 0.5,
        reconnect_sleep_jitter: float = 0.1,
        reconnect_sleep_max: float = 60.0,
        reconnect_attempts_max: int = 3,
        timeout: float | None = None,
        heartbeats: tuple[int, int] = (0, 0),
        keepalive: Any = None,
        vhost: str | None = None,
        auto_decode: bool = True,
        encoding: str = "utf-8",
        auto_content_length: bool = True,
        heart_beat_receive_scale: float = 1.5,
        bind_host_port: Any = None,
        *,
        ws_path: str | None = None,
        header: Mapping[str, str] | None = None,
        auto_reconnect: bool = False,
        disconnect_timeout: float = 5.0,
    ) -> None:
        if keepalive:
            logger.warning("keepalive is ignored by stompws.compat: heart-beats detect a dead peer")
        self.host_and_ports, self._standing_in = ordered(
            list(host_and_ports or [("localhost", 61613)]), prefer_localhost, try_loopback_connect
        )
        self.bind_host_port = (
            (str(bind_host_port[0]), int(bind_host_port[1])) if bind_host_port else None
        )
        self.heartbeats = tuple(heartbeats)
        self.vhost = vhost
        self.auto_decode = auto_decode
        self.encoding = encoding
        self.auto_content_length = auto_content_length
        self.timeout = timeout
        self.heart_beat_receive_scale = heart_beat_receive_scale
        self.ws_path = ws_path
        self.header = dict(header) if header else None
        self.auto_reconnect = auto_reconnect
        self.disconnect_timeout = disconnect_timeout
        # stomp.py's sleeps grow by (1 + increase) each round, capped at the maximum, plus a
        # random share of jitter; -1 attempts means no limit.
        self.reconnect = Reconnect(
            initial=reconnect_sleep_initial,
            maximum=max(reconnect_sleep_max, reconnect_sleep_initial),
            multiplier=1.0 + max(reconnect_sleep_increase, 0.0),
            jitter=min(max(reconnect_sleep_jitter, 0.0), 1.0),
            attempts=None if reconnect_attempts_max == -1 else max(reconnect_attempts_max, 1),
        )
        self._listeners: dict[str, Any] = {}
        self._listeners_lock = threading.Lock()
        self._ssl: dict[HostAndPort, SslParams] = {}
        self._dispatcher = Dispatcher(
            self._listeners_in_order, auto_decode=auto_decode, encoding=encoding
        )
        self._client: Client | None = None
        self._transactions: dict[str, Transaction] = {}
        self._stop_connecting = threading.Event()

    def __repr__(self) -> str:
        state = "connected" if self.is_connected() else "not connected"
        return f"<stompws.compat.{type(self).__name__} {self.host_and_ports} {state}>"

    # -- listeners ---------------------------------------------------------------------------

    def set_listener(self, name: str, listener: Any) -> None:
        """Add ``listener`` under ``name``, replacing one of the same name. Listeners are
        called in the order of their names, as in stomp.py."""
        if listener is None:
            raise UsageError("set_listener needs a listener, not None")
        with self._listeners_lock:
            self._listeners = {**self._listeners, name: listener}

    def remove_listener(self, name: str) -> None:
        """Remove the listener set under ``name``; ``KeyError`` when there is none."""
        with self._listeners_lock:
            listeners = dict(self._listeners)
            del listeners[name]
            self._listeners = listeners

    def get_listener(self, name: str) -> Any:
        """The listener set under ``name``, or None."""
        return self._listeners.get(name)

    def _listeners_in_order(self) -> list[Any]:
        # The dict is replaced, never changed in place: a snapshot needs no lock.
        return [listener for _, listener in sorted(self._listeners.items())]

    # -- TLS ---------------------------------------------------------------------------------

    def set_ssl(
        self,
        for_hosts: Sequence[HostAndPort] = (),
        key_file: str | None = None,
        cert_file: str | None = None,
        ca_certs: str | None = None,
        cert_validator: Any = None,
        ssl_version: int = DEFAULT_SSL_VERSION,
        password: str | None = None,
        verify: bool = True,
    ) -> None:
        """Use TLS for these ``(host, port)`` entries (stomp+ssl:// or wss://); the settings
        become an ``ssl.SSLContext`` at ``connect()``. Unlike stomp.py, one connection takes
        one TLS configuration for all its hosts."""
        params = SslParams(
            key_file, cert_file, ca_certs, cert_validator, ssl_version, password, verify
        )
        for host_and_port in for_hosts:
            self._ssl[(str(host_and_port[0]), int(host_and_port[1]))] = params

    def get_ssl(self, host_and_port: HostAndPort | None = None) -> dict[str, Any] | None:
        """The TLS settings given with ``set_ssl`` for ``host_and_port`` (None: the host
        connected to now), as a dict; None when that host has none."""
        if host_and_port is None:
            client = self._client
            host_and_port = self._current(client) if client is not None else None
        params = self._ssl.get((host_and_port[0], host_and_port[1])) if host_and_port else None
        return params.as_dict() if params is not None else None

    @staticmethod
    def _current(client: Client) -> HostAndPort:
        endpoint = client._endpoint
        return (endpoint.host, endpoint.port)

    # -- connecting --------------------------------------------------------------------------

    def _urls(self) -> list[str]:
        return urls_for(
            self.host_and_ports, set(self._ssl), self._websocket, self.ws_path, self._standing_in
        )

    def _ssl_context(self) -> ssl.SSLContext | None:
        used = set(self._ssl.values())
        if len(used) > 1:
            raise UsageError(
                "stompws.compat takes one TLS configuration per connection; call set_ssl once "
                "with every host in for_hosts"
            )
        return used.pop().context() if used else None

    def is_connected(self) -> bool:
        """True while the connection has its CONNECTED and has not ended."""
        client = self._client
        return client is not None and client.is_connected

    def connect(
        self,
        username: str | None = None,
        passcode: str | None = None,
        wait: bool = False,
        headers: Mapping[str, Any] | None = None,
        with_connect_command: bool = False,
        **keyword_headers: Any,
    ) -> None:
        """Connect, trying every host up to ``reconnect_attempts_max`` times with
        stomp.py's growing sleeps between rounds.

        Unlike stomp.py this always waits for CONNECTED (each attempt at most ``timeout``
        seconds, 10 by default). ``wait=True``: an ERROR from the broker (e.g. refused
        credentials) raises ``ConnectFailedException``; ``wait=False``: it reaches the
        listeners' ``on_error`` and this returns, as in stomp.py. A host that cannot be
        reached raises ``ConnectFailedException`` either way. ``with_connect_command`` is
        accepted and has no effect: stompws always sends CONNECT, which every broker takes.
        """
        if self.is_connected():
            return
        old = self._client
        if old is not None:
            old.disconnect(timeout=self.disconnect_timeout)
        connect_headers = merge(headers, keyword_headers)
        connect_headers.pop("accept-version", None)  # this class's version decides it
        vhost: str | None = self.vhost
        if vhost is None and "host" in connect_headers:
            vhost = str(connect_headers.pop("host"))
        else:
            connect_headers.pop("host", None)
        client = Client(
            self._urls(),
            login=username,
            passcode=passcode,
            host=vhost,
            heartbeats=self._heartbeats_asked,
            versions=(self.version,),
            connect_headers=as_pairs(connect_headers),
            ws_headers=self.header,
            ssl_context=self._ssl_context(),
            reconnect=self.reconnect if self.auto_reconnect else None,
            connect_timeout=self.timeout or 10.0,
            # Not below stompws's default: ActiveMQ sends its heart-beat two intervals
            # after its last frame, which stomp.py's 1.5 would call a timeout here.
            heartbeat_tolerance=max(self.heart_beat_receive_scale, 2.0),
            source_address=self.bind_host_port,
        )
        client.add_listener(self._dispatcher)
        self._client = client
        self._transactions = {}
        self._stop_connecting.clear()
        last: ConnectError | None = None
        limit = self.reconnect.attempts
        for number, delay in enumerate(itertools.chain([0.0], self.reconnect.delays()), 1):
            if delay and self._stop_connecting.wait(delay):
                break
            try:
                with self._dispatcher.hold_connected():
                    frame = client.connect()
            except BrokerError as error:
                if wait:
                    raise ConnectFailedException(f"the broker refused: {error}") from error
                return
            except ConnectError as error:
                last = error
                logger.info("connect attempt %d failed: %s", number, error)
            else:
                self._dispatcher.connected(frame)
                return
            if limit is not None and number >= limit:
                break
        raise ConnectFailedException(f"could not connect: {last or 'stopped'}") from last

    def disconnect(
        self,
        receipt: str | None = None,
        headers: Mapping[str, Any] | None = None,
        **keyword_headers: Any,
    ) -> None:
        """Call the listeners' ``on_disconnecting``, send DISCONNECT with a receipt (named
        ``receipt``, for listeners waiting on it), wait for it at most
        ``disconnect_timeout`` seconds and close. Unlike stomp.py it never waits for ever,
        whether or not ``receipt`` is given. Does nothing when not connected."""
        extra = merge(headers, keyword_headers)
        extra.pop("receipt", None)
        self._stop_connecting.set()
        client = self._client
        if client is None:
            return
        if not client.is_connected:
            client.disconnect(timeout=self.disconnect_timeout)  # joins what is left
            return
        self._dispatcher.call("on_disconnecting")
        client.disconnect(
            timeout=self.disconnect_timeout,
            headers=as_pairs(extra),
            receipt=str(receipt) if receipt is not None else str(uuid.uuid4()),
        )

    def __enter__(self) -> BaseConnection:
        return self

    def __exit__(self, *_: object) -> None:
        self.disconnect()

    # -- messaging ---------------------------------------------------------------------------

    def _live(self) -> Client:
        client = self._client
        if client is None:
            raise NotConnectedException("not connected: call connect() first")
        return client

    def send(
        self,
        destination: str,
        body: str | bytes,
        content_type: str | None = None,
        headers: Mapping[str, Any] | None = None,
        **keyword_headers: Any,
    ) -> None:
        """Send ``body`` (a str encoded with the connection's ``encoding``, as stomp.py does,
        so that it is read back with the same; or bytes). ``transaction=`` and ``receipt=``
        go as in stomp.py; the content-length is always right (``auto_content_length=False``
        leaves it out unless the headers name it)."""
        if destination is None or body is None:
            raise UsageError("send needs a destination and a body")
        extra = merge(headers, keyword_headers)
        transaction = extra.pop("transaction", None)
        if content_type:
            extra.pop("content-type", None)
        length = self.auto_content_length or extra.pop("content-length", None) is not None
        extra.pop("content-length", None)
        with translated():
            self._live().send(
                destination,
                body.encode(self.encoding) if isinstance(body, str) else body,
                headers=as_pairs(extra),
                content_type=content_type or None,
                transaction=str(transaction) if transaction is not None else None,
                content_length=length,
            )

    def subscribe(
        self,
        destination: str,
        id: str | None = None,
        ack: str = "auto",
        headers: Mapping[str, Any] | None = None,
        **keyword_headers: Any,
    ) -> None:
        """Subscribe with this ``id`` (chosen for you when None); a ``receipt=`` header is
        sent as given."""
        extra = merge(headers, keyword_headers)
        with translated():
            self._live().subscribe(
                destination,
                ack=ack,
                headers=as_pairs(extra),
                id=str(id) if id is not None else None,
                callback=ignore,
            )

    def _unsubscribe(self, id: str | None, destination: str | None, extra: dict[str, Any]) -> None:
        receipt = extra.pop("receipt", None)
        client = self._live()
        if id is None:
            found = [s for s in client.subscriptions if s.destination == destination]
            if not found:
                raise UsageError(f"no subscription to {destination!r}")
            id = found[0].id
        with translated():
            client.unsubscribe(str(id), receipt=_receipt(receipt), headers=as_pairs(extra))

    def _acknowledge(
        self,
        positive: bool,
        headers: dict[str, str],
        transaction: str | None,
        receipt: str | None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        # The client takes the MESSAGE frame and picks the headers the negotiated version
        # needs; one with only the ids the caller gave gets exactly those on the wire.
        message = NativeFrame("MESSAGE", headers)
        client = self._live()
        options: dict[str, Any] = {
            "transaction": transaction,
            "receipt": _receipt(receipt),
            "headers": as_pairs(dict(extra or {})),
        }
        with translated():
            if positive:
                client.ack(message, **options)
            else:
                client.nack(message, **options)

    def begin(
        self,
        transaction: str | None = None,
        headers: Mapping[str, Any] | None = None,
        **keyword_headers: Any,
    ) -> str:
        """Begin a transaction; returns its id (``transaction``, or a new one)."""
        extra = merge(headers, keyword_headers)
        receipt = extra.pop("receipt", None)
        with translated():
            tx = self._live().begin(
                str(transaction) if transaction else str(uuid.uuid4()),
                receipt=_receipt(receipt),
                headers=as_pairs(extra),
            )
        self._transactions[tx.id] = tx
        return tx.id

    def _end(self, command: str, transaction: str | None, extra: dict[str, Any]) -> None:
        if transaction is None:
            raise UsageError(f"{command} needs the transaction id")
        receipt = extra.pop("receipt", None)
        tx = self._transactions.pop(str(transaction), None)
        if tx is None:
            raise UsageError(f"no open transaction {transaction!r} on this connection")
        with translated():
            if command == "COMMIT":
                tx.commit(receipt=_receipt(receipt), headers=as_pairs(extra))
            else:
                tx.abort(receipt=_receipt(receipt), headers=as_pairs(extra))

    def commit(
        self,
        transaction: str | None = None,
        headers: Mapping[str, Any] | None = None,
        **keyword_headers: Any,
    ) -> None:
        """COMMIT ``transaction``; extra headers as stomp.py takes them."""
        self._end("COMMIT", transaction, merge(headers, keyword_headers))

    def abort(
        self, transaction: str, headers: Mapping[str, Any] | None = None, **keyword_headers: Any
    ) -> None:
        """ABORT ``transaction``; extra headers as stomp.py takes them."""
        self._end("ABORT", transaction, merge(headers, keyword_headers))

    # -- what stomp.py programs read on a connection ------------------------------------------

    @property
    def transport(self) -> Transport:
        """stomp.py's ``conn.transport``, as far as programs use it (compat/transport.py)."""
        return Transport(self)

    @property
    def heartbeats(self) -> tuple[int, int]:
        """As in stomp.py: the heart-beats asked for, and once CONNECTED came, those agreed
        (ms between ours, ms between the broker's; 0 when off)."""
        connection = self._client._lifecycle.connection if self._client is not None else None
        connected = connection.attempt.frame if connection is not None else None
        if connected is None or "heart-beat" not in connected.headers:
            return self._heartbeats_asked
        return negotiated_heartbeats(self._heartbeats_asked, connected.headers["heart-beat"])

    @heartbeats.setter
    def heartbeats(self, asked: Sequence[int]) -> None:
        self._heartbeats_asked = (int(asked[0]), int(asked[1]))

    @property
    def heartbeat_thread(self) -> threading.Thread | None:
        """The thread sending and checking heart-beats while it runs, else None."""
        connection = self._client._lifecycle.connection if self._client is not None else None
        thread = connection.heartbeat_thread if connection is not None else None
        return thread if thread is not None and thread.is_alive() else None

    # -- escape hatch ------------------------------------------------------------------------

    @property
    def client(self) -> Client | None:
        """The native ``stompws.Client`` of the current connection, for moving code over to
        the native API one call at a time."""
        return self._client


def _receipt(receipt: Any) -> str | bool:
    """A receipt id the caller chose goes on the wire as it is; none asks for no RECEIPT."""
    return str(receipt) if receipt is not None else False
