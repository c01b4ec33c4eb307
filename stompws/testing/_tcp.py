"""The embedded broker's plain TCP listener (stomp://) and its transport.

The accept loop waits on the listening socket and on a wake-up socket pair together, so
that ``close`` stops it at once on every platform (closing a socket under a thread blocked
in ``accept`` does not wake that thread on Linux).
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import ssl
import struct
import threading
from typing import Final

from ..errors import ConnectionClosed
from ..sockets import Stream
from ._connection import Connection, TransportClosed
from ._hub import Hub

__all__ = ["TcpListener", "TcpTransport", "TlsTcpTransport", "bound_writes"]

logger = logging.getLogger("stompws.testing")

_READ_SIZE: Final = 256 * 1024


class TcpTransport:
    kind = "tcp"
    subprotocol: str | None = None

    def __init__(self, sock: socket.socket, peer: str) -> None:
        self.peer = peer
        self._sock = sock

    def recv(self) -> bytes | None:
        try:
            data = self._sock.recv(_READ_SIZE)
        except OSError:
            return None
        return data or None

    def send(self, chunks: list[bytes]) -> None:
        try:
            self._sock.sendall(chunks[0] if len(chunks) == 1 else b"".join(chunks))
        except OSError as error:
            raise TransportClosed(str(error)) from error

    def close_gracefully(self, code: int, reason: str) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_WR)

    def abort(self) -> None:
        # OSError: already shut down or never fully connected; either way nothing waits.
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)

    def release(self) -> None:
        self._sock.close()

    def bound_writes(self, seconds: float) -> None:
        bound_writes(self._sock, seconds)


class TlsTcpTransport:
    """stomp+ssl://: the TLS handshake happens in the connection's reader thread, on its
    first ``recv`` (the accept loop never waits for a client), bounded by the broker's
    ``connect_timeout``; then the client's own ``Stream`` carries the bytes, because an
    SSL socket must not be read and written by two threads at once."""

    kind = "tcp"
    subprotocol: str | None = None

    def __init__(
        self, sock: socket.socket, peer: str, context: ssl.SSLContext, handshake_timeout: float
    ) -> None:
        self.peer = peer
        self._sock = sock
        self._context = context
        self._handshake_timeout = handshake_timeout
        self._write_timeout: float | None = None
        self._stream: Stream | None = None
        self._lock = threading.Lock()  # the stream appears once, under it
        self._aborted = False

    def _open(self) -> Stream | None:
        try:
            self._sock.settimeout(self._handshake_timeout)
            wrapped = self._context.wrap_socket(self._sock, server_side=True)
        except (OSError, ValueError) as error:  # ssl.SSLError is an OSError
            logger.info("TLS handshake with %s failed: %s", self.peer, error)
            return None
        self._sock = wrapped
        stream = Stream(wrapped, write_timeout=self._write_timeout or 3600.0, where=self.peer)
        with self._lock:
            self._stream = stream
            if self._aborted:
                stream.abort()
        return stream

    def recv(self) -> bytes | None:
        stream = self._stream or self._open()
        if stream is None:
            return None
        try:
            return stream.recv(_READ_SIZE, "closed")
        except ConnectionClosed:
            return None

    def send(self, chunks: list[bytes]) -> None:
        stream = self._stream
        if stream is None:
            raise TransportClosed("the TLS handshake is not over")
        try:
            stream.send(chunks[0] if len(chunks) == 1 else b"".join(chunks))
        except ConnectionClosed as error:
            raise TransportClosed(str(error)) from error

    def close_gracefully(self, code: int, reason: str) -> None:
        stream = self._stream
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.shutdown_write()

    def abort(self) -> None:
        with self._lock:
            self._aborted = True
            stream = self._stream
        if stream is not None:
            stream.abort()
        else:
            with contextlib.suppress(OSError):  # wakes a handshake under way
                self._sock.shutdown(socket.SHUT_RDWR)

    def release(self) -> None:
        if self._stream is not None:
            self._stream.close()
        else:
            self._sock.close()

    def bound_writes(self, seconds: float) -> None:
        self._write_timeout = seconds
        if self._stream is not None:
            self._stream.write_timeout = seconds


class TcpListener:
    def __init__(
        self, hub: Hub, host: str, port: int, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self._hub = hub
        self._ssl_context = ssl_context
        self._sock = socket.create_server((host, port))
        self.port: int = self._sock.getsockname()[1]
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._closed = False
        self.thread = threading.Thread(
            target=self._accept_loop, name="stompws-testbroker-tcp-accept", daemon=True
        )

    def start(self) -> None:
        self.thread.start()

    def close(self, timeout: float) -> None:
        """Stop accepting and join the accept thread (at most ``timeout`` seconds)."""
        if not self._closed:
            self._closed = True
            with contextlib.suppress(OSError):
                self._wake_writer.send(b"x")
        if self.thread.ident is not None:
            self.thread.join(timeout)
        if not self.thread.is_alive():
            self._sock.close()
            self._wake_reader.close()
            self._wake_writer.close()

    def _accept_loop(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._sock, selectors.EVENT_READ)
            selector.register(self._wake_reader, selectors.EVENT_READ)
            while not self._closed:
                # A timeout only as a safety net: close() wakes the selector itself.
                ready = selector.select(timeout=5.0)
                if self._closed:
                    return
                if not ready:
                    continue
                try:
                    sock, address = self._sock.accept()
                except OSError as error:
                    logger.debug("accept failed: %s", error)
                    continue
                self._accepted(sock, f"{address[0]}:{address[1]}")

    def _accepted(self, sock: socket.socket, peer: str) -> None:
        if self._hub.faults.refusing:
            logger.info("refusing TCP connection from %s (fault hook)", peer)
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
            return
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        number = self._hub.next_number()
        transport: TcpTransport | TlsTcpTransport
        if self._ssl_context is None:
            transport = TcpTransport(sock, peer)
        else:
            timeout = self._hub.settings.connect_timeout
            transport = TlsTcpTransport(sock, peer, self._ssl_context, timeout)
        connection = Connection(self._hub, transport, number)
        # Admitted here, on the accept thread, so that a connection past the cap is
        # refused before any thread starts for it.
        refused = connection.admit()
        if refused is not None:
            level = self._hub.refusal_level() if self._hub.full() else logging.INFO
            logger.log(level, "refusing TCP connection from %s: %s", peer, refused)
            if self._ssl_context is None:
                _refuse(sock, refused)
            else:  # no ERROR can go out before a TLS handshake, which this thread never waits for
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            return
        thread = threading.Thread(
            target=connection.run, name=f"stompws-testbroker-tcp-{number}", daemon=True
        )
        connection.reader_thread = thread
        self._hub.track(connection)
        thread.start()


def bound_writes(sock: socket.socket, seconds: float) -> None:
    # At the socket level rather than settimeout(): the reader shares this socket and
    # must keep waiting in recv without a timeout.
    whole = int(seconds)
    value = struct.pack("ll", whole, int((seconds - whole) * 1_000_000))
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, value)


def _refuse(sock: socket.socket, reason: str) -> None:
    """Tell a refused peer why in an ERROR frame, if its socket takes it at once, and close."""
    error = f"ERROR\nmessage:{reason}\n\n\x00".encode()
    with contextlib.suppress(OSError):
        sock.send(error, socket.MSG_DONTWAIT)
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
