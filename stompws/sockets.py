"""Sockets and TLS under both transports: opening within one deadline, and ``Stream``, a
connected socket that one reader thread and the writers share, with bounded writes and an
abort that wakes them all.

Why the socket is non-blocking and every wait is a ``poll``:

* A write must end by its deadline. ``SO_SNDTIMEO`` bounds a plain socket's ``send``, but
  not ``SSLSocket.sendall`` on a blocking socket: OpenSSL retries the write inside one call,
  so a TLS peer that stops reading held a sender (and ``disconnect()``) for ever. Measured
  before this module: ``send`` of 16 MiB to a peer that never reads, write_timeout 0.5 s,
  failed after 0.5 s over TCP but was still blocked after 4.5 s over TLS (ws:// and wss://
  the same). Here each write waits in ``poll`` for at most what is left of its deadline:
  the same send fails after 0.50 s over TCP and TLS (0.56-0.65 s over ws:// and wss://,
  where masking 16 MiB comes first), and ``abort`` wakes it within 1 ms
  (tests/test_transport_bounds.py).
* An OpenSSL SSL object must not be used by two threads at once (SSL_read in the reader,
  SSL_write in a writer). Non-blocking, each SSL call returns at once, so one lock held
  only around each call serialises them without a reader ever waiting behind a writer
  that waits for the peer: the waiting is in ``poll``, outside the lock.
* ``abort`` writes a byte to a socket pair that every ``poll`` also watches, so a reader
  or writer waiting on the peer wakes at once, TLS or not. It also shuts the socket down
  (``shutdown(2)``, never ``close``: the reader closes; closing a socket from a second
  thread while another uses it is a known crash with TLS), so the peer learns of it.
* ``poll``, never ``select``: ``select`` refuses descriptors above 1023, which a process
  with many open files reaches.

Reads never time out (an idle, healthy connection must stay up; heart-beats judge
liveness).
"""

from __future__ import annotations

import contextlib
import itertools
import math
import select
import selectors
import socket
import ssl
import threading
import time
from typing import TYPE_CHECKING

from .endpoint import Endpoint
from .errors import ConnectError, ConnectionClosed, ConnectTimeout, WriteTimeout

if TYPE_CHECKING:
    from .proxy import Proxy

__all__ = [
    "HandshakeGuard",
    "Stream",
    "connect_socket",
    "shutdown",
]

# Largest piece handed to one SSL_write, so that the lock it holds is short. OpenSSL wants
# a write it refused (want-write) repeated with the same bytes: a piece is retried whole.
_TLS_PIECE = 64 * 1024


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


def connect_socket(
    endpoint: Endpoint,
    guard: HandshakeGuard,
    ssl_context: ssl.SSLContext | None,
    proxy: Proxy | None = None,
    source_address: tuple[str, int] | None = None,
) -> socket.socket:
    """A connected, blocking socket (TLS-wrapped when the endpoint says so), through a
    CONNECT tunnel when ``proxy`` is given (TLS then runs inside it, end to end), bound to
    ``source_address`` (host, port; port 0 for any) when given."""
    where = f"{endpoint.host}:{endpoint.port}"
    if guard.aborted:
        raise ConnectError(f"connecting to {where} was aborted")
    address = (endpoint.host, endpoint.port) if proxy is None else (proxy.host, proxy.port)
    if proxy is not None:
        where = f"{proxy.where} (for {where})"
    try:
        sock = socket.create_connection(
            address, timeout=guard.remaining(), source_address=source_address
        )
    except TimeoutError:
        raise ConnectTimeout(f"no TCP connection to {where} within {guard.timeout:g} s") from None
    except OSError as error:
        raise ConnectError(f"cannot connect to {where}: {error.strerror or error}") from error
    try:
        guard.attach(sock)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if proxy is not None:
            proxy.open_tunnel(sock, endpoint, guard)
        if endpoint.tls:
            sock.settimeout(guard.remaining())
            context = ssl_context or ssl.create_default_context()
            sock = _wrap_tls(sock, context, endpoint.host, guard)
        return sock
    except BaseException:
        sock.close()
        raise


def _wrap_tls(
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


def shutdown(sock: socket.socket | None) -> None:
    """Wake a thread blocked on ``sock`` without closing it under that thread's feet."""
    if sock is None:
        return
    # The plain socket method on purpose: SSLSocket.shutdown also drops the TLS object that
    # the reader thread may be using at this moment. OSError: already shut down or never
    # connected, and the reader wakes either way.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


_READ, _WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE
_HAVE_POLL = hasattr(select, "poll")


def _wait(
    sock: socket.socket, events: int, wake: socket.socket | None, timeout: float | None
) -> bool:
    """Until ``sock`` is ready for ``events`` (_READ, _WRITE), ``wake`` is readable, or
    ``timeout`` passed (None: no limit); whether ``sock`` is ready."""
    if _HAVE_POLL:
        poller = select.poll()
        mask = (select.POLLIN if events & _READ else 0) | (select.POLLOUT if events & _WRITE else 0)
        poller.register(sock, mask)
        if wake is not None:
            poller.register(wake, select.POLLIN)
        fd = sock.fileno()
        ready = poller.poll(None if timeout is None else math.ceil(timeout * 1000))
        return any(number == fd for number, _ in ready)
    # Windows has no poll; its select takes any descriptor, as selectors uses it.
    with selectors.DefaultSelector() as selector:  # pragma: no cover
        selector.register(sock, events)
        if wake is not None:
            selector.register(wake, _READ)
        return any(key.fileobj is sock for key, _ in selector.select(timeout))


class Stream:
    """A connected socket (TLS or not) for one reader thread and serialised writers.

    * ``send`` writes everything or raises ``ConnectionClosed``: ``WriteTimeout`` when the
      bytes did not go out within ``write_timeout`` (or a shorter ``timeout``), because
      the peer stopped reading. Part of the bytes may have gone out: after a failed send
      the stream refuses every further one, and the caller ends the connection.
    * ``recv`` waits for bytes as long as it takes; ``abort`` (any thread) wakes it and any
      waiting ``send`` at once, and both then raise ``ConnectionClosed``.
    * ``close``: the reader's, at the end, with no writer inside.
    """

    def __init__(self, sock: socket.socket, *, write_timeout: float, where: str) -> None:
        self.sock = sock
        self.write_timeout = write_timeout
        self.aborted = False
        self._where = where
        self._ssl = sock if isinstance(sock, ssl.SSLSocket) else None
        self._ssl_lock = threading.Lock()  # around each SSL call (module docstring)
        # Around each read from the socket, and the reader's note that it holds bytes it
        # has not handed over yet (``read_handled``): whoever asks ``readable_now`` sees the
        # bytes either waiting in the socket or in the reader's hands, never in between.
        self._read_lock = threading.Lock()
        self._holding = False
        self._failed: ConnectionClosed | None = None  # a send failed: no further one
        self._wake, self._waker = socket.socketpair()
        try:
            self._wake.setblocking(False)
            self._waker.setblocking(False)
            sock.setblocking(False)
        except BaseException:
            self._wake.close()
            self._waker.close()
            raise

    # -- writing -----------------------------------------------------------------------------

    def send(self, data: bytes, timeout: float | None = None) -> None:
        """Write all of ``data`` within ``write_timeout``, or ``timeout`` when shorter."""
        if self._failed is not None:
            raise ConnectionClosed(str(self._failed)) from self._failed
        bound = (
            self.write_timeout if timeout is None else min(max(timeout, 0.0), self.write_timeout)
        )
        deadline = time.monotonic() + bound
        view = memoryview(data)
        try:
            while view:
                if self.aborted:
                    raise ConnectionClosed("connection aborted")
                try:
                    if self._ssl is not None:
                        with self._ssl_lock:
                            sent = self.sock.send(view[:_TLS_PIECE])
                    else:
                        sent = self.sock.send(view)
                except ssl.SSLWantReadError:
                    # A renegotiation wants the peer's answer first; the reader takes it.
                    events = _READ
                except (BlockingIOError, ssl.SSLWantWriteError):
                    events = _WRITE
                else:
                    view = view[sent:]
                    continue
                left = deadline - time.monotonic()
                if left <= 0:
                    raise self._timed_out(bound, timeout)
                _wait(self.sock, events, self._wake, left)
        except ConnectionClosed as error:
            self._failed = error
            raise
        except OSError as error:
            if self.aborted:
                self._failed = ConnectionClosed("connection aborted")
            else:
                self._failed = ConnectionClosed(f"write to {self._where} failed: {error}")
            raise self._failed from error

    def _timed_out(self, bound: float, timeout: float | None) -> WriteTimeout:
        if timeout is not None and bound < self.write_timeout:
            return WriteTimeout(
                f"write to {self._where} did not finish within {bound:g} s, what was left "
                f"of the caller's deadline (write_timeout={self.write_timeout:g} s): "
                "the peer is not reading"
            )
        return WriteTimeout(
            f"write to {self._where} did not finish within write_timeout="
            f"{self.write_timeout:g} s: the peer is not reading"
        )

    def shutdown_write(self) -> None:
        """Half-close (plain socket method: see ``shutdown``); OSError when that failed."""
        socket.socket.shutdown(self.sock, socket.SHUT_WR)

    # -- reading (the reader thread) -----------------------------------------------------

    def recv(self, size: int, on_eof: str) -> bytes:
        """At least one byte; the end of the connection as ``ConnectionClosed`` saying why
        (``on_eof`` for an orderly close by the peer)."""
        while True:
            if self.aborted:
                raise ConnectionClosed("connection aborted")
            try:
                with self._read_lock:
                    if self._ssl is not None:
                        with self._ssl_lock:
                            data = self.sock.recv(size)
                    else:
                        data = self.sock.recv(size)
                    self._holding = bool(data)
            except (BlockingIOError, ssl.SSLWantReadError):
                events = _READ
            except ssl.SSLWantWriteError:
                events = _WRITE
            except OSError as error:
                if self.aborted:
                    raise ConnectionClosed("connection aborted") from None
                raise ConnectionClosed(f"connection to {self._where} lost: {error}") from error
            else:
                if data:
                    return data
                if self.aborted:
                    raise ConnectionClosed("connection aborted")
                raise ConnectionClosed(on_eof)
            _wait(self.sock, events, self._wake, None)

    def read_handled(self) -> None:
        """The reader's: the bytes of its last ``recv`` are handed over."""
        self._holding = False

    def readable_now(self) -> bool:
        """Whether bytes came that the reader has not handed over yet: waiting unread (in
        the kernel or in the TLS layer), or read and still in the reader's hands."""
        with self._read_lock:
            if self._holding:
                return True
            if self.sock.fileno() < 0:
                return False
            if self._ssl is not None:
                with self._ssl_lock:
                    if self._ssl.fileno() >= 0 and self._ssl.pending():
                        return True
            try:
                return _wait(self.sock, _READ, None, 0)
            except (OSError, ValueError):  # closed by the reader meanwhile
                return False

    # -- ending --------------------------------------------------------------------------

    def abort(self) -> None:
        """From any thread: wake the reader and any writer now; both raise ConnectionClosed."""
        self.aborted = True
        with contextlib.suppress(OSError):  # full (woken already) or closed (all over)
            self._waker.send(b"\0")
        shutdown(self.sock)

    def close(self) -> None:
        with self._ssl_lock:
            self.sock.close()
        self._wake.close()
        self._waker.close()
