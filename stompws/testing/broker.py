"""``Broker``: the embedded STOMP broker's public face (see the package docstring)."""

from __future__ import annotations

import ipaddress
import logging
import ssl
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING

from .._version import __version__
from ..errors import UsageError
from ..frame import VERSIONS
from ..parser import DEFAULT_MAX_FRAME_SIZE
from ._connection import Connection
from ._hub import ConnectionInfo, Hub, Settings
from ._tcp import TcpListener

if TYPE_CHECKING:
    from ._ws import WsListener  # imported by start(): websockets is an optional extra

__all__ = ["Broker"]

logger = logging.getLogger("stompws.testing")

_STOP_GRACE = 1.0  # seconds stop() lets connections close politely before cutting them


class Broker:
    """An in-process STOMP 1.0/1.1/1.2 broker over WebSocket and TCP, for tests and demos.

    Not a production broker: it keeps everything in memory, has no persistence, no
    clustering and no flow control, and checks credentials against a plain dict. It warns
    when it listens beyond loopback (``host`` other than 127.0.0.1, ::1 or localhost)
    and accepts any login. For
    production use RabbitMQ (with its STOMP and Web STOMP plugins) or ActiveMQ, and their
    clustering.

    ``with Broker() as broker:`` starts it and stops it; ``broker.ws_url`` and
    ``broker.tcp_url`` say where it listens once started.

    Arguments (all but ``host`` and ``port`` keyword-only):

    * ``host``: the address both listeners bind to (127.0.0.1).
    * ``port``: the WebSocket port; ``tcp_port``: the TCP port. 0 (the default) picks a free
      port; the chosen one is in ``ws_port`` / ``tcp_port`` after ``start()``.
    * ``websocket``, ``tcp``: which listeners to run (both by default). The WebSocket one
      needs the ``websockets`` package (``pip install 'stompws[broker]'``).
    * ``users``: ``{login: passcode}``; when given, a CONNECT with any other login or
      passcode gets ERROR "Access refused" and is closed. None (default) accepts anyone.
    * ``versions``: the STOMP versions spoken (all three by default).
    * ``heartbeats``: the broker's (sx, sy) in ms for CONNECTED; None (default) answers
      whatever the client asks for (its cy, cx), as RabbitMQ does; (0, 0) turns them off.
    * ``heartbeat_tolerance``: a client silent for this many times the agreed interval is
      sent ERROR "heart-beat timeout" and closed (2.0).
    * ``max_frame_size``: larger frames get ERROR "malformed frame" and a close (16 MiB).
    * ``close_timeout``: seconds a WebSocket close handshake may take (2.0).
    * ``allowed_origins``: web page Origins (``"http://localhost:3000"``) allowed to open a
      WebSocket. A request without an Origin (not from a browser) is always accepted, and
      so is one whose Origin names the broker itself by IP address or localhost; any other
      gets HTTP 403, so that a web page in a browser cannot use a broker running nearby.
    * ``connect_timeout``: seconds a client has, from its connection, to send a complete
      CONNECT; then it gets ERROR "CONNECT timeout" and is closed (10.0).
    * ``max_connections``: open connections at most (256); the next one is refused at once
      (HTTP 503, or an ERROR frame and a close over TCP).
    * ``ssl_context``: a server-side ``ssl.SSLContext`` (with its certificate chain loaded)
      makes both listeners speak TLS: wss:// and stomp+ssl:// (``wss_url``, ``tcps_url``;
      ``ws_url`` and ``tcp_url`` then give those too). The TLS handshake counts against
      ``connect_timeout``. A client certificate is asked for when the context says so
      (``verify_mode = ssl.CERT_REQUIRED``).
    * ``max_outbox_bytes``: bytes waiting to be written to one client at most (64 MiB); a
      client that reads slower than it is sent to is disconnected past that, with ERROR
      "slow consumer" when it can still be written, and its unacknowledged messages go
      back to their queues.

    For tests, besides: ``connections`` and ``wait_for_connections(n)`` (who is connected),
    ``queue_depth(destination)`` (messages waiting), and fault hooks, each documented on
    its method: ``stop_heartbeats``/``resume_heartbeats``, ``go_silent``/``resume_sending``,
    ``delay_frames``, ``refuse_connections``, ``drop_connections``, ``send_raw``,
    ``reset_faults``. Threads are named ``stompws-testbroker-...``; ``stop()`` joins them.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tcp_port: int = 0,
        websocket: bool = True,
        tcp: bool = True,
        users: Mapping[str, str] | None = None,
        versions: Sequence[str] = VERSIONS,
        heartbeats: tuple[int, int] | None = None,
        heartbeat_tolerance: float = 2.0,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        close_timeout: float = 2.0,
        allowed_origins: Sequence[str] = (),
        connect_timeout: float = 10.0,
        max_connections: int = 256,
        max_outbox_bytes: int = 64 * 1024 * 1024,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if not (websocket or tcp):
            raise UsageError("a broker needs at least one listener: websocket or tcp")
        chosen = tuple(sorted(set(versions)))
        if not chosen or any(v not in VERSIONS for v in chosen):
            raise UsageError(f"versions must be a non-empty choice of {VERSIONS}, not {versions!r}")
        if heartbeats is not None and (
            len(heartbeats) != 2 or not all(isinstance(ms, int) and ms >= 0 for ms in heartbeats)
        ):
            raise UsageError(f"heartbeats must be two whole milliseconds >= 0, not {heartbeats!r}")
        if heartbeat_tolerance < 1.0:
            raise UsageError(f"heartbeat_tolerance must be at least 1.0, not {heartbeat_tolerance}")
        if max_frame_size < 1:
            raise UsageError(f"max_frame_size must be at least 1, not {max_frame_size}")
        if not close_timeout > 0:
            raise UsageError(f"close_timeout must be more than 0, not {close_timeout}")
        if not connect_timeout > 0:
            raise UsageError(f"connect_timeout must be more than 0, not {connect_timeout}")
        if max_connections < 1:
            raise UsageError(f"max_connections must be at least 1, not {max_connections}")
        if max_outbox_bytes < 1:
            raise UsageError(f"max_outbox_bytes must be at least 1, not {max_outbox_bytes}")
        if isinstance(allowed_origins, str):
            raise UsageError("allowed_origins is a list of Origins, not one string")
        self.host = host
        self._ports = (port, tcp_port)
        self._want = (websocket, tcp)
        self._hub = Hub(
            Settings(
                versions=chosen,
                users=dict(users) if users is not None else None,
                heartbeats=heartbeats,
                heartbeat_tolerance=heartbeat_tolerance,
                max_frame_size=max_frame_size,
                close_timeout=close_timeout,
                server=f"stompws-testbroker/{__version__}",
                allowed_origins=frozenset(allowed_origins),
                connect_timeout=connect_timeout,
                max_connections=max_connections,
                max_outbox_bytes=max_outbox_bytes,
            )
        )
        self._ssl_context = ssl_context
        self._ws: WsListener | None = None
        self._tcp: TcpListener | None = None
        self._state = "new"

    def __repr__(self) -> str:
        where = ", ".join(url for url in (self._url("ws"), self._url("tcp")) if url)
        return f"<stompws.testing.Broker {self._state}{' ' + where if where else ''}>"

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Broker:
        """Bind the listeners and start serving; returns the broker itself."""
        if self._state != "new":
            raise UsageError(
                f"this broker is {self._state}; a stopped broker cannot start again: create a "
                "new Broker (on the same ports, to test reconnecting)"
            )
        if self._hub.settings.users is None and not _loopback(self.host):
            logger.warning(
                "the broker will listen on %s, beyond this machine, and accept any login: "
                "anyone who can reach it can use it (give users=..., or --user LOGIN:PASSCODE)",
                self.host,
            )
        want_ws, want_tcp = self._want
        ws_port, tcp_port = self._ports
        ws = None
        if want_ws:
            try:
                from ._ws import WsListener
            except ImportError as error:
                raise UsageError(
                    "the WebSocket listener needs the websockets package: "
                    "pip install 'stompws[broker]' (or Broker(websocket=False))"
                ) from error
            # Headroom over the frame limit so that an oversized frame reaches the STOMP
            # parser and gets an ERROR, not a bare WebSocket close.
            max_message = self._hub.settings.max_frame_size * 2 + 65536
            ws = WsListener(self._hub, self.host, ws_port, max_message, self._ssl_context)
        try:
            tcp = (
                TcpListener(self._hub, self.host, tcp_port, self._ssl_context) if want_tcp else None
            )
        except BaseException:
            if ws is not None:
                ws.discard()
            raise
        self._ws, self._tcp = ws, tcp
        self._state = "running"
        if ws is not None:
            ws.start()
        if tcp is not None:
            tcp.start()
        logger.info("%r started", self)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Close every connection and listener and join every thread, within ``timeout``.

        Connections first get a polite end (queued frames are sent, then a WebSocket close
        1001 or a TCP half-close); those still open after a second are cut. Never hangs: a
        thread that does not end in time is logged and left behind. Calling it again does
        nothing.
        """
        if self._state != "running":
            self._state = "stopped"
            return
        self._state = "stopped"
        deadline = time.monotonic() + timeout
        hub = self._hub
        with hub.lock:
            hub.stopping = True  # new connections are turned away from here on
        if self._tcp is not None:
            self._tcp.close(_remaining(deadline))
        for connection in hub.connections():
            if connection.closing or not connection.session.connected:
                # A polite end was already offered and not taken, or there is no session
                # to end politely.
                connection.abort()
            else:
                connection.close(1001, "broker stopping")
        hub.wait(lambda live: not live, min(_STOP_GRACE, _remaining(deadline)))
        for connection in hub.connections():
            connection.abort()
        if self._ws is not None:
            self._ws.abort_all()  # handshakes still under way too
        threads = [t for c in hub.known() for t in c.threads()]
        for thread in threads:
            if thread.ident is not None:
                thread.join(_remaining(deadline))
        if self._ws is not None:
            # Last: with every connection over, the server's shutdown has nothing to wait for.
            self._ws.begin_shutdown()
            self._ws.join(deadline)
            threads += self._ws.threads()
        if self._tcp is not None:
            threads.append(self._tcp.thread)
            self._tcp.close(0.0)  # releases its sockets now that its thread is over
        left = [t.name for t in threads if t.is_alive()]
        if left:
            logger.warning("%r: threads still running after stop(): %s", self, ", ".join(left))

    def __enter__(self) -> Broker:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """True between a successful ``start()`` and ``stop()``."""
        return self._state == "running"

    # -- where it listens ------------------------------------------------------------------

    @property
    def ws_port(self) -> int | None:
        """The WebSocket listener's port (chosen at ``start()`` when 0 was asked), or None
        without one (``websocket=False``, or not started)."""
        return self._ws.port if self._ws is not None else None

    @property
    def tcp_port(self) -> int | None:
        """The plain STOMP listener's port (chosen at ``start()`` when 0 was asked), or None
        without one (``tcp=False``, or not started)."""
        return self._tcp.port if self._tcp is not None else None

    @property
    def ws_url(self) -> str:
        """ws://HOST:PORT/ws (wss:// with ``ssl_context``; any path is accepted); raises
        before start() or without a WebSocket listener."""
        return self._require_url("ws")

    @property
    def tcp_url(self) -> str:
        """stomp://HOST:PORT (stomp+ssl:// with ``ssl_context``); raises before start() or
        without a TCP listener."""
        return self._require_url("tcp")

    @property
    def wss_url(self) -> str:
        """wss://HOST:PORT/ws; raises without ``ssl_context`` (and as ``ws_url`` does)."""
        return self._require_tls("ws")

    @property
    def tcps_url(self) -> str:
        """stomp+ssl://HOST:PORT; raises without ``ssl_context`` (and as ``tcp_url`` does)."""
        return self._require_tls("tcp")

    def _require_tls(self, kind: str) -> str:
        if self._ssl_context is None:
            raise UsageError("this broker does not speak TLS: give Broker(ssl_context=...)")
        return self._require_url(kind)

    @property
    def urls(self) -> list[str]:
        """Every URL it listens on, WebSocket first."""
        return [url for url in (self._url("ws"), self._url("tcp")) if url]

    def _url(self, kind: str) -> str | None:
        host = f"[{self.host}]" if ":" in self.host else self.host
        tls = self._ssl_context is not None
        if kind == "ws" and self._ws is not None:
            return f"{'wss' if tls else 'ws'}://{host}:{self._ws.port}/ws"
        if kind == "tcp" and self._tcp is not None:
            return f"{'stomp+ssl' if tls else 'stomp'}://{host}:{self._tcp.port}"
        return None

    def _require_url(self, kind: str) -> str:
        url = self._url(kind)
        if url is None:
            what = "WebSocket" if kind == "ws" else "TCP"
            raise UsageError(
                f"no {what} URL: the broker is {self._state}"
                + ("" if self._state == "new" else f" without a {what} listener")
            )
        return url

    # -- looking inside (for tests) --------------------------------------------------------

    @property
    def connections(self) -> list[ConnectionInfo]:
        """The open client connections, oldest first (a snapshot); one that the broker or
        the client has begun to close is no longer listed."""
        with self._hub.lock:
            return [c.info() for c in self._live()]

    def wait_for_connections(
        self, count: int, timeout: float = 5.0, *, sessions: bool = True
    ) -> list[ConnectionInfo]:
        """Wait until exactly ``count`` clients have a STOMP session (CONNECTED sent, not
        ended since); return them. Raises ``TimeoutError`` after ``timeout`` seconds.

        ``sessions=False`` counts every open connection instead, as ``connections`` lists
        them: handshakes under way too, so that ``wait_for_connections(0, sessions=False)``
        waits until the broker's side of a refused TLS or WebSocket handshake has ended."""

        def counted() -> list[Connection]:
            live = self._live()
            return [c for c in live if c.session.connected] if sessions else live

        if not self._hub.wait(lambda _: len(counted()) == count, timeout):
            what = "STOMP session(s)" if sessions else "open connection(s)"
            raise TimeoutError(
                f"{count} {what} expected within {timeout:g} s; the broker has {self.connections}"
            )
        with self._hub.lock:
            return [c.info() for c in counted()]

    def _live(self) -> list[Connection]:
        live = [c for c in self._hub.connections() if not (c.closing or c.session.ended)]
        return sorted(live, key=lambda c: c.number)

    def queue_depth(self, destination: str) -> int:
        """How many messages wait in a queue for a consumer (delivered ones not counted)."""
        with self._hub.lock:
            return self._hub.router.queue_depth(destination)

    # -- fault hooks -----------------------------------------------------------------------

    def stop_heartbeats(self) -> None:
        """Stop sending heart-beats on every connection (frames still flow), as a broker
        whose timer died would; clients should declare it dead. Undo: resume_heartbeats()."""
        self._hub.faults.heartbeats_stopped = True

    def resume_heartbeats(self) -> None:
        """Undo ``stop_heartbeats()``: heart-beats go out again at the agreed rate."""
        self._hub.faults.heartbeats_stopped = False
        self._nudge()

    def go_silent(self) -> None:
        """Write nothing at all on any connection (frames, heart-beats, raw bytes are
        dropped) while reading and routing as usual and keeping the sockets open: a hung
        broker or a dead network path. Messages delivered meanwhile are lost to their
        consumer (unacked ones come back when it disconnects). Undo: resume_sending()."""
        self._hub.faults.silent = True

    def resume_sending(self) -> None:
        """Undo ``go_silent()``: frames and heart-beats go out again (what was dropped
        meanwhile stays dropped)."""
        self._hub.faults.silent = False
        self._nudge()

    def delay_frames(self, seconds: float) -> None:
        """Wait ``seconds`` before writing each frame (not heart-beats) on every connection;
        frames queue up behind each other. 0 turns it off."""
        if seconds < 0:
            raise UsageError(f"a delay cannot be negative: {seconds}")
        self._hub.faults.delay = seconds

    def refuse_connections(self, refuse: bool = True) -> None:
        """Refuse new connections (True) or accept them again (False): a TCP connection is
        accepted and closed at once, a WebSocket handshake is answered with HTTP 503.
        Open connections are not touched."""
        self._hub.faults.refusing = refuse

    def drop_connections(self, session: str | None = None) -> int:
        """Cut connections abruptly, without ERROR or WebSocket close, as a crash or a
        network failure would: all of them, or only the one whose CONNECTED carried
        ``session`` (``client.session``). Returns how many were cut."""
        targets = self._targets(session)
        for connection in targets:
            connection.abort()
        return len(targets)

    def send_raw(self, data: bytes, session: str | None = None) -> int:
        """Write ``data`` as is to every connection (or the one with ``session``), in order
        with its frames; over WebSocket as one message. Returns how many got it."""
        targets = self._targets(session)
        for connection in targets:
            connection.send_raw(data)
        return len(targets)

    def reset_faults(self) -> None:
        """Undo every fault switch (heart-beats, silence, delay, refusal)."""
        self._hub.faults.reset()
        self._nudge()

    def _nudge(self) -> None:
        """Wake every writer, so that a heart-beat now due goes out at once."""
        for connection in self._hub.connections():
            connection.nudge()

    def _targets(self, session: str | None) -> list[Connection]:
        live = self._live()
        if session is None:
            return live
        chosen = [c for c in live if c.session.session_id == session]
        if not chosen:
            raise UsageError(f"no connection has session {session!r}")
        return chosen


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may well resolve beyond this machine


def _remaining(deadline: float) -> float:
    return max(deadline - time.monotonic(), 0.0)
