"""Byte transports under a STOMP session: TCP here, WebSocket in ``ws_transport``.

These two modules are the only ones that import ``socket``, ``ssl`` or ``websocket``.

Threading contract, which the client relies on:

* exactly one thread (the connection's reader) calls ``recv`` and, at the end, ``close``;
* any thread may call ``send`` and ``close_gracefully``; the client serialises them;
* any thread may call ``abort``: it shuts the socket down (``shutdown(2)``, not ``close``) so
  that a ``recv`` blocked in the reader returns at once, and the reader then closes. Closing
  a socket from a second thread while another is inside ``recv`` is a known crash with TLS.

Reads never time out (an idle, healthy connection must stay up; heart-beats judge liveness);
writes do, through ``SO_SNDTIMEO``, so a peer that stops reading cannot block a sender, or
``disconnect()``, for longer than ``write_timeout``.
"""

from __future__ import annotations

import contextlib
import itertools
import select
import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import unquote, unquote_plus, urlsplit

from .errors import ConnectError, ConnectionClosed, ConnectTimeout, UsageError
from .frame import VERSIONS

__all__ = [
    "Endpoint",
    "HandshakeGuard",
    "TcpTransport",
    "Transport",
    "open_transport",
    "parse_url",
]

_DEFAULT_PORTS = {"ws": 80, "wss": 443, "stomp": 61613, "stomp+ssl": 61614, "stomp+tls": 61614}
_READ_SIZE = 256 * 1024


@dataclass(frozen=True)
class Endpoint:
    """Where to connect, parsed from a URL; credentials in it never appear in its repr.

    ``heartbeats``, ``vhost`` and ``versions`` are the STOMP options the URL's query gave
    (None when it gave none); ``path`` keeps the rest of the query, untouched.
    """

    scheme: str
    host: str
    port: int
    path: str = "/"
    login: str | None = field(default=None, repr=False)
    passcode: str | None = field(default=None, repr=False)
    heartbeats: tuple[int, int] | None = None
    vhost: str | None = None
    versions: tuple[str, ...] | None = None

    @property
    def websocket(self) -> bool:
        return self.scheme in ("ws", "wss")

    @property
    def tls(self) -> bool:
        return self.scheme in ("wss", "stomp+ssl", "stomp+tls")

    @property
    def url(self) -> str:
        """The URL without credentials or query (which may hold an API key): safe to log."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        path = self.path.partition("?")[0] if self.websocket else ""
        return f"{self.scheme}://{host}:{self.port}{path}"

    @property
    def request_url(self) -> str:
        """The URL the WebSocket handshake asks for: the path with its query, no credentials."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.path}"


# Query options that configure the STOMP session rather than the WebSocket request, by the
# names other STOMP clients use. They are matched on the raw (still percent-encoded) name,
# so a server parameter that happens to share a name can be passed through as, for
# example, ``%76ersion=3``.
_HEARTBEAT_OPTIONS = ("heartbeat", "heart-beat", "heartbeats")
_VHOST_OPTIONS = ("vhost", "host")
_VERSION_OPTIONS = ("version", "accept-version", "versions")
_STOMP_OPTIONS = frozenset(_HEARTBEAT_OPTIONS + _VHOST_OPTIONS + _VERSION_OPTIONS)


def parse_url(url: str) -> Endpoint:
    """Parse ``scheme://[login[:passcode]@]host[:port][/path][?query]``.

    The query options ``heartbeat`` (``5000`` for both directions, or ``cx,cy``; also
    spelled ``heart-beat``), ``vhost`` (or ``host``: the STOMP host header) and ``version``
    (``1.2`` or a list ``1.1,1.2``; also ``accept-version``) are taken out of the URL; the
    rest of a ws:// query stays in ``path`` as it was written and goes to the server. A
    stomp:// URL has no request to carry other parameters, so it refuses them.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise UsageError(
            f"unsupported URL scheme {parts.scheme!r} in {_without_credentials(url)!r}: "
            "use ws://, wss://, stomp:// or stomp+ssl://"
        )
    if not parts.hostname:
        raise UsageError(f"no host in URL {_without_credentials(url)!r}")
    try:
        port = parts.port or _DEFAULT_PORTS[scheme]
    except ValueError:
        raise UsageError(f"bad port in URL {_without_credentials(url)!r}") from None
    options, rest = _split_query(parts.query, url)
    if rest and scheme not in ("ws", "wss"):
        raise UsageError(
            f"unknown query option {rest.split('&')[0].split('=')[0]!r} in "
            f"{_without_credentials(url)!r}: a {scheme}:// URL takes only "
            "heartbeat=, vhost= and version="
        )
    path = parts.path or "/"
    if rest:
        path = f"{path}?{rest}"
    return Endpoint(
        scheme=scheme,
        host=parts.hostname,
        port=port,
        path=path,
        login=unquote(parts.username) if parts.username is not None else None,
        passcode=unquote(parts.password) if parts.password is not None else None,
        heartbeats=_heartbeat_option(options, url),
        vhost=_single_option(options, _VHOST_OPTIONS, url),
        versions=_version_option(options, url),
    )


def _split_query(query: str, url: str) -> tuple[dict[str, str], str]:
    """Our options (decoded) and the rest of the query, byte for byte as it was."""
    options: dict[str, str] = {}
    kept: list[str] = []
    for piece in query.split("&") if query else []:
        raw_name, _, raw_value = piece.partition("=")
        name = raw_name.lower()
        if name not in _STOMP_OPTIONS:
            kept.append(piece)
            continue
        if name in options:
            raise UsageError(f"query option {name!r} given twice in {_without_credentials(url)!r}")
        value = unquote_plus(raw_value).strip()
        if not value:
            raise UsageError(
                f"query option {name!r} needs a value in {_without_credentials(url)!r}"
            )
        options[name] = value
    return options, "&".join(kept)


def _single_option(options: dict[str, str], names: tuple[str, ...], url: str) -> str | None:
    given = [name for name in names if name in options]
    if len(given) > 1:
        raise UsageError(
            f"query options {' and '.join(given)} mean the same; give one in "
            f"{_without_credentials(url)!r}"
        )
    return options[given[0]] if given else None


def _heartbeat_option(options: dict[str, str], url: str) -> tuple[int, int] | None:
    value = _single_option(options, _HEARTBEAT_OPTIONS, url)
    if value is None:
        return None
    fields = [item.strip() for item in value.split(",")]
    try:
        numbers = [int(item) for item in fields]
    except ValueError:
        numbers = []
    if len(numbers) not in (1, 2) or any(ms < 0 for ms in numbers):
        raise UsageError(
            f"heartbeat must be milliseconds (5000) or a pair (cx,cy), not {value!r} "
            f"in {_without_credentials(url)!r}"
        )
    return (numbers[0], numbers[-1])


def _version_option(options: dict[str, str], url: str) -> tuple[str, ...] | None:
    value = _single_option(options, _VERSION_OPTIONS, url)
    if value is None:
        return None
    versions = tuple(item.strip() for item in value.split(","))
    unknown = [item for item in versions if item not in VERSIONS]
    if unknown:
        raise UsageError(
            f"unknown STOMP version {unknown[0]!r} in {_without_credentials(url)!r}; "
            f"use {', '.join(VERSIONS)}"
        )
    return versions


def _without_credentials(url: str) -> str:
    # Cut at the raw text, not at what urlsplit calls the netloc: a password with an
    # unencoded "/", "?" or "#" ends the netloc early, and the rest of it (the secret) would
    # stay in the message about that very malformed URL. Hiding a path's "@" too is harmless.
    scheme, separator, rest = url.partition("://")
    if not separator or "@" not in rest:
        return url
    return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"


class Transport(Protocol):
    """What the client needs from a byte transport (see the module docstring)."""

    endpoint: Endpoint
    subprotocol: str | None

    def send(self, data: bytes) -> None: ...

    def recv(self) -> bytes: ...

    def readable_now(self) -> bool: ...

    def close_gracefully(self) -> None: ...

    def abort(self) -> None: ...

    def close(self) -> None: ...


class HandshakeGuard:
    """One deadline for the whole opening of a connection (TCP, TLS, WebSocket handshake),
    and a way for another thread to abort it.

    Socket timeouts apply to each read, so a peer that drips a byte at a time could hold a
    handshake for ever; at the deadline a timer shuts the socket down instead.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.deadline = time.monotonic() + timeout
        self.fired = False
        self.aborted = False
        self._sock: socket.socket | None = None
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()

    def remaining(self) -> float:
        return max(self.deadline - time.monotonic(), 0.001)

    def attach(self, sock: socket.socket) -> None:
        with self._lock:
            self._sock = sock
            if self.aborted:
                shutdown(sock)
                return
            self._timer = threading.Timer(self.remaining(), self._expire)
            self._timer.name = f"stompws-opening-{next(_guards)}"
            self._timer.daemon = True
            self._timer.start()

    def replace(self, sock: socket.socket) -> None:
        """The same connection under a new socket object (TLS wrapping)."""
        with self._lock:
            self._sock = sock
            if self.aborted or self.fired:
                shutdown(sock)

    def _expire(self) -> None:
        with self._lock:
            self.fired = True
            shutdown(self._sock)

    def abort(self) -> None:
        """Make the opening fail now, from any thread."""
        with self._lock:
            self.aborted = True
            shutdown(self._sock)

    def close(self) -> None:
        timer = self._timer
        if timer is not None:
            timer.cancel()
            if timer is not threading.current_thread():
                timer.join(1.0)


_guards = itertools.count(1)


def open_transport(
    endpoint: Endpoint,
    *,
    guard: HandshakeGuard,
    ssl_context: ssl.SSLContext | None,
    ws_headers: dict[str, str] | None,
    versions: tuple[str, ...],
    write_timeout: float,
) -> Transport:
    """Connect (TCP, TLS, WebSocket handshake) before ``guard``'s deadline."""
    try:
        if endpoint.websocket:
            from .ws_transport import WebSocketTransport

            return WebSocketTransport.open(
                endpoint,
                guard=guard,
                ssl_context=ssl_context,
                ws_headers=ws_headers,
                versions=versions,
                write_timeout=write_timeout,
            )
        return TcpTransport.open(
            endpoint, guard=guard, ssl_context=ssl_context, write_timeout=write_timeout
        )
    except ConnectError as error:
        if guard.aborted:
            raise ConnectError(f"connecting to {endpoint.url} was aborted") from error
        if guard.fired and not isinstance(error, ConnectTimeout):
            raise ConnectTimeout(
                f"connecting to {endpoint.url} took longer than {guard.timeout:g} s ({error})"
            ) from error
        raise
    finally:
        guard.close()


def connect_socket(
    endpoint: Endpoint, guard: HandshakeGuard, ssl_context: ssl.SSLContext | None
) -> socket.socket:
    """A connected, blocking socket (TLS-wrapped when the endpoint says so)."""
    where = f"{endpoint.host}:{endpoint.port}"
    if guard.aborted:
        raise ConnectError(f"connecting to {where} was aborted")
    try:
        sock = socket.create_connection((endpoint.host, endpoint.port), timeout=guard.remaining())
    except TimeoutError:
        raise ConnectTimeout(f"no TCP connection to {where} within {guard.timeout:g} s") from None
    except OSError as error:
        raise ConnectError(f"cannot connect to {where}: {error.strerror or error}") from error
    try:
        guard.attach(sock)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if endpoint.tls:
            sock.settimeout(guard.remaining())
            context = ssl_context or ssl.create_default_context()
            sock = wrap_tls(sock, context, endpoint.host, guard)
        return sock
    except BaseException:
        sock.close()
        raise


def wrap_tls(
    sock: socket.socket, context: ssl.SSLContext, host: str, guard: HandshakeGuard
) -> ssl.SSLSocket:
    try:
        # Wrapping detaches ``sock``: the guard must hold the TLS socket before the
        # handshake starts, so that its deadline and abort reach the handshake.
        wrapped = context.wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)
        guard.replace(wrapped)
        wrapped.do_handshake()
        return wrapped
    except ssl.SSLCertVerificationError as error:
        raise ConnectError(
            f"TLS certificate of {host} refused: {error.verify_message or error.reason}"
        ) from error
    except TimeoutError:
        raise ConnectTimeout(f"TLS handshake with {host} did not finish in time") from None
    except (ssl.SSLError, OSError) as error:
        raise ConnectError(f"TLS handshake with {host} failed: {error}") from error


def make_blocking(sock: socket.socket, write_timeout: float) -> None:
    """No read timeout; a bounded write (see the module docstring)."""
    sock.settimeout(None)
    seconds = int(write_timeout)
    micros = int((write_timeout - seconds) * 1_000_000)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", seconds, micros))


def shutdown(sock: socket.socket | None) -> None:
    """Wake a reader blocked on ``sock`` without closing it under that reader's feet."""
    if sock is None:
        return
    # The plain socket method on purpose: SSLSocket.shutdown also drops the TLS object that
    # the reader thread may be using at this moment. OSError: already shut down or never
    # connected, and the reader wakes either way.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def readable_now(sock: socket.socket | None) -> bool:
    """Whether bytes wait unread (in the kernel or in the TLS layer)."""
    if sock is None or sock.fileno() < 0:
        return False
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return bool(readable)


class _Abortable(Protocol):
    endpoint: Endpoint
    _aborted: bool


def receive(sock: socket.socket, transport: _Abortable, on_eof: str) -> bytes:
    """What one ``recv`` gives; the end of the connection as ``ConnectionClosed`` saying why
    (``on_eof`` for an orderly close by the peer)."""
    try:
        data = sock.recv(_READ_SIZE)
    except OSError as error:
        if transport._aborted:
            raise ConnectionClosed("connection aborted") from None
        raise ConnectionClosed(f"connection to {transport.endpoint.url} lost: {error}") from error
    if not data:
        if transport._aborted:
            raise ConnectionClosed("connection aborted")
        raise ConnectionClosed(on_eof)
    return data


class TcpTransport:
    """STOMP straight over a TCP (or TLS) socket: stomp:// and stomp+ssl://."""

    subprotocol: str | None = None

    def __init__(self, endpoint: Endpoint, sock: socket.socket) -> None:
        self.endpoint = endpoint
        self._sock = sock
        self._aborted = False

    @classmethod
    def open(
        cls,
        endpoint: Endpoint,
        *,
        guard: HandshakeGuard,
        ssl_context: ssl.SSLContext | None,
        write_timeout: float,
    ) -> TcpTransport:
        sock = connect_socket(endpoint, guard, ssl_context)
        make_blocking(sock, write_timeout)
        return cls(endpoint, sock)

    def send(self, data: bytes) -> None:
        try:
            self._sock.sendall(data)
        except OSError as error:
            raise ConnectionClosed(f"write to {self.endpoint.url} failed: {error}") from error

    def recv(self) -> bytes:
        return receive(self._sock, self, f"{self.endpoint.url} closed the connection")

    def readable_now(self) -> bool:
        return readable_now(self._sock)

    def close_gracefully(self) -> None:
        try:
            # Half-close: the broker sees our end and closes its side, which ends the
            # reader's recv with an orderly EOF. (Plain socket method: see shutdown().)
            socket.socket.shutdown(self._sock, socket.SHUT_WR)
        except OSError:
            self.abort()

    def abort(self) -> None:
        self._aborted = True
        shutdown(self._sock)

    def close(self) -> None:
        self._sock.close()
