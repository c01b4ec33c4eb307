"""The embedded broker's WebSocket listener (ws://), on the ``websockets`` package's threaded
server: all WebSocket framing, the handshake and the close handshake are that library's.

Choices:

* Subprotocols: the highest of v12.stomp, v11.stomp, v10.stomp that the client offers and the
  broker speaks. A client offering no subprotocol is accepted (browsers' STOMP libraries
  always offer one, but simple test clients may not); one offering only other subprotocols
  is refused with HTTP 400.
* Each frame and each heart-beat goes out as its own message: text when it is UTF-8, binary
  otherwise (a text message must be UTF-8, RFC 6455 section 5.6).
* No compression and no pings: STOMP has its own heart-beats, and the stompws client speaks
  neither extension.
* Any request path is accepted; ``Broker.ws_url`` names ``/ws`` as RabbitMQ does.
* Every thread the server starts for a connection is named ``stompws-testbroker-ws-N`` (the
  handler) or ``stompws-testbroker-wsio-N`` (its reader), and ``Broker.stop`` joins them.
"""

from __future__ import annotations

import contextlib
import http
import inspect
import ipaddress
import logging
import os
import socket
import ssl
import threading
import time
import weakref
from collections.abc import Sequence
from typing import Any, Final

from websockets.exceptions import ConnectionClosed, NegotiationError
from websockets.http11 import Request, Response
from websockets.sync.server import ServerConnection, serve
from websockets.typing import Subprotocol

from ._connection import Connection, TransportClosed
from ._hub import Hub
from ._tcp import bound_writes

__all__ = ["SUBPROTOCOLS", "WsListener", "WsTransport"]

logger = logging.getLogger("stompws.testing")


class _NoWireDumps(logging.Filter):
    """Drops websockets' DEBUG dumps of the handshake and of every frame ("< ...", "> ..."):
    they hold clients' Authorization headers and CONNECT passcodes, which must not reach a
    log under the ``stompws`` name. Its other records (errors, closes) pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            record.levelno <= logging.DEBUG
            and isinstance(record.msg, str)
            and record.msg.startswith(("<", ">"))
        )


_wire_logger = logging.getLogger("stompws.testing.websockets")
_wire_logger.addFilter(_NoWireDumps())

SUBPROTOCOLS: Final = {"1.2": "v12.stomp", "1.1": "v11.stomp", "1.0": "v10.stomp"}


def _is_text(data: bytes) -> bool:
    if data.isascii():
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class WsTransport:
    kind = "ws"

    def __init__(self, ws: ServerConnection) -> None:
        self._ws = ws
        address = ws.remote_address
        self.peer = f"{address[0]}:{address[1]}" if isinstance(address, tuple) else str(address)
        self.subprotocol: str | None = ws.subprotocol

    def recv(self) -> bytes | None:
        try:
            return self._ws.recv(decode=False)
        except (ConnectionClosed, OSError):
            return None

    def send(self, chunks: list[bytes]) -> None:
        try:
            for chunk in chunks:
                self._ws.send(chunk, text=_is_text(chunk))
        except (ConnectionClosed, OSError) as error:
            raise TransportClosed(str(error)) from error

    def close_gracefully(self, code: int, reason: str) -> None:
        # A close reason is at most 123 bytes (RFC 6455 section 5.5).
        reason = reason.encode()[:120].decode("utf-8", "ignore")
        try:
            self._ws.close(code, reason)
        except (ConnectionClosed, OSError, RuntimeError) as error:
            logger.debug("WebSocket close failed: %s", error)

    def abort(self) -> None:
        _cut(self._ws)

    def release(self) -> None:
        """Nothing: the server closes the connection when the handler returns."""

    def bound_writes(self, seconds: float) -> None:
        bound_writes(self._ws.socket, seconds)


def _cut(ws: ServerConnection) -> None:
    # The plain socket method on the raw socket: it wakes websockets' reader thread (which
    # waits in select) and any write blocked on a client that stopped reading.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(ws.socket, socket.SHUT_RDWR)


class WsListener:
    def __init__(
        self,
        hub: Hub,
        host: str,
        port: int,
        max_message: int,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._hub = hub
        self._lock = threading.Lock()
        # Every server connection, from the moment it exists (during the handshake too), so
        # that stop() can cut and join all of them; weak, so that ended ones drop out.
        self._all: weakref.WeakSet[ServerConnection] = weakref.WeakSet()
        # Each connection's handler thread: websockets' shutdown waits until a handler has
        # left its set of running handlers, which the thread does a moment before it ends;
        # join() waits for the end itself (a busy machine stretched that moment past stop()).
        self._handlers: weakref.WeakSet[threading.Thread] = weakref.WeakSet()
        listener = self

        class _Connection(ServerConnection):
            stompws_number: int

            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                listener._created(self)

        self._server = serve(
            self._handle,
            host,
            port,
            ssl=ssl_context,
            create_connection=_Connection,
            select_subprotocol=self._select_subprotocol,
            process_request=self._process_request,
            compression=None,
            ping_interval=None,
            open_timeout=hub.settings.connect_timeout,  # the handshake counts as connecting
            close_timeout=hub.settings.close_timeout,
            max_size=max_message,
            server_header=hub.settings.server,
            logger=_wire_logger,
        )
        self.port: int = self._server.socket.getsockname()[1]
        self.thread = threading.Thread(
            target=self._server.serve_forever, name="stompws-testbroker-ws-accept", daemon=True
        )
        self._shutdown_thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread.start()

    def discard(self) -> None:
        """Release the listening socket of a listener that was never started."""
        server = self._server
        server.socket.close()
        for end in (server.shutdown_watcher, server.shutdown_notifier):
            # A socket pair in websockets 17, a pipe's descriptors in 16 (Python 3.10).
            if isinstance(end, int):
                os.close(end)
            else:
                end.close()

    def begin_shutdown(self) -> None:
        """Stop accepting; open connections get a close (1001) from the server.

        ``Server.shutdown`` waits for every handler without a time limit, so it runs on its
        own thread, which ``join`` waits for with one.
        """
        if self._shutdown_thread is None:
            # websockets 17 takes the close code; 16, the last for Python 3.10, closes with
            # 1001 and takes no arguments (passing them killed this thread, and stop() then
            # waited out its whole timeout for every broker).
            takes_code = "code" in inspect.signature(type(self._server).shutdown).parameters
            closing = {"code": 1001, "reason": "broker stopping"} if takes_code else {}
            self._shutdown_thread = threading.Thread(
                target=self._server.shutdown,
                kwargs=closing,
                name="stompws-testbroker-ws-shutdown",
                daemon=True,
            )
            self._shutdown_thread.start()

    def abort_all(self) -> None:
        for ws in self._connections():
            _cut(ws)

    def join(self, deadline: float) -> None:
        """Wait for the server's shutdown and every thread it started, until ``deadline``
        (a ``time.monotonic()`` value). Connections accepted after ``abort_all`` are cut
        as they come, so that none waits out its handshake timeout."""
        shutdown = self._shutdown_thread
        while shutdown is not None and shutdown.is_alive() and time.monotonic() < deadline:
            self.abort_all()
            shutdown.join(min(0.05, max(deadline - time.monotonic(), 0.0)))
        for thread in self.threads():
            if thread.ident is not None and thread is not threading.current_thread():
                thread.join(max(deadline - time.monotonic(), 0.0))

    def threads(self) -> list[threading.Thread]:
        threads = [self.thread]
        if self._shutdown_thread is not None:
            threads.append(self._shutdown_thread)
        threads += [ws.recv_events_thread for ws in self._connections()]
        with self._lock:
            threads += list(self._handlers)
        return threads

    def _connections(self) -> list[ServerConnection]:
        with self._lock:
            return list(self._all)

    # -- callbacks from the server -----------------------------------------------------------

    def _created(self, ws: ServerConnection) -> None:
        """Runs on the handler thread, before the handshake."""
        number = self._hub.next_number()
        ws.stompws_number = number  # type: ignore[attr-defined]
        threading.current_thread().name = f"stompws-testbroker-ws-{number}"
        ws.recv_events_thread.name = f"stompws-testbroker-wsio-{number}"
        with self._lock:
            # Under the lock that abort_all() takes: either it sees this connection, or
            # this sees that the broker is stopping.
            self._all.add(ws)
            self._handlers.add(threading.current_thread())
            stopping = self._hub.stopping
        if stopping:
            _cut(ws)

    def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        if self._hub.faults.refusing or self._hub.stopping:
            logger.info("refusing WebSocket connection from %s", ws.remote_address)
            return ws.respond(http.HTTPStatus.SERVICE_UNAVAILABLE, "refusing connections\n")
        origin = request.headers.get("Origin")
        if origin is not None and not self._origin_allowed(origin, request.headers.get("Host")):
            logger.warning(
                "refusing WebSocket connection from %s: Origin %r is not allowed",
                ws.remote_address,
                origin,
            )
            return ws.respond(
                http.HTTPStatus.FORBIDDEN,
                "Origin not allowed: start the broker with --allow-origin ORIGIN "
                "(Broker(allowed_origins=...)) to let that web page connect\n",
            )
        if self._hub.full():
            limit = self._hub.settings.max_connections
            logger.log(
                self._hub.refusal_level(),
                "refusing WebSocket connection from %s: too many connections (limit %d)",
                ws.remote_address,
                limit,
            )
            return ws.respond(http.HTTPStatus.SERVICE_UNAVAILABLE, "too many connections\n")
        return None

    def _origin_allowed(self, origin: str, host: str | None) -> bool:
        """Whether a request carrying this Origin may use the broker.

        Browsers send an Origin, and any web page the developer visits could otherwise use
        a broker that accepts any login: so only the Origins given are allowed. Besides
        those, one naming the broker itself (scheme://Host, as websocket-client and other
        non-browser clients send it) is let through when that Host is an IP address or
        localhost: a page cannot be served from there, and a DNS name could be rebound to
        127.0.0.1 by an attacker's page.
        """
        if origin in self._hub.settings.allowed_origins:
            return True
        if host is None or origin not in (f"http://{host}", f"https://{host}"):
            return False
        name = host.rpartition(":")[0] if not host.endswith("]") else host
        name = name.strip("[]") or host
        if name == "localhost":
            return True
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return False
        return True

    def _select_subprotocol(
        self, ws: ServerConnection, offered: Sequence[Subprotocol]
    ) -> Subprotocol | None:
        if not offered:
            return None
        for version in sorted(self._hub.settings.versions, reverse=True):
            name = SUBPROTOCOLS[version]
            if name in offered:
                return Subprotocol(name)
        speaks = ", ".join(
            SUBPROTOCOLS[v] for v in sorted(self._hub.settings.versions, reverse=True)
        )
        raise NegotiationError(f"no STOMP subprotocol offered; this broker speaks {speaks}")

    def _handle(self, ws: ServerConnection) -> None:
        number = getattr(ws, "stompws_number", None) or self._hub.next_number()
        connection = Connection(self._hub, WsTransport(ws), number)
        connection.reader_thread = threading.current_thread()
        connection.extra_threads.append(ws.recv_events_thread)
        self._hub.track(connection)
        connection.run()
