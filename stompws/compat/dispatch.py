"""From stompws's listener events to stomp.py-shaped listeners, and receipt ids.

``Dispatcher`` is one ``stompws.Listener`` on the compat connection's ``Client``. It turns
each event into the stomp.py callback with stomp.py's arguments, and calls the named
listeners in the order of their names (stomp.py's order, which programs written for it may
rely on). Each call is isolated: one that raises is logged and the rest still run.

Receipt ids the caller chooses (``ack(..., receipt="r1")``) go on the wire as they are (the
native client takes a ``str`` receipt), so a RECEIPT reaches the listeners unchanged.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

from ..frame import Frame as NativeFrame
from ..listener import Listener
from ..transport import parse_url
from .frame import Frame, from_native

__all__ = ["Dispatcher"]

logger = logging.getLogger("stompws.compat")


class Dispatcher(Listener):
    """Calls the stomp.py-shaped listeners that ``listeners()`` returns, in that order."""

    def __init__(
        self,
        listeners: Callable[[], list[Any]],
        *,
        auto_decode: bool,
        encoding: str,
    ) -> None:
        self._listeners = listeners
        self._auto_decode = auto_decode
        self._encoding = encoding
        self._host_and_port: tuple[str, int] = ("", 0)
        self._opened = False  # a CONNECT went out on the current attempt
        # While connect() runs, on_connected is left to it: see hold_connected().
        self._holding = False

    @contextlib.contextmanager
    def hold_connected(self) -> Iterator[None]:
        """Inside, CONNECTED does not reach the listeners: the caller hands it over once
        ``Client.connect()`` returned. The client counts as connected only then, and
        stomp.py programs subscribe in ``on_connected``, which would fail before."""
        self._holding = True
        try:
            yield
        finally:
            self._holding = False

    def connected(self, frame: NativeFrame) -> None:
        self.call("on_connected", self._frame(frame))

    def call(self, event: str, *args: Any) -> None:
        for listener in self._listeners():
            method = getattr(listener, event, None)
            if method is None:
                continue  # stomp.py accepts listeners that define only some callbacks
            try:
                method(*args)
            except Exception:
                logger.exception("listener %r raised in %s; the others still run", listener, event)

    def _frame(self, frame: NativeFrame) -> Frame:
        return from_native(frame, auto_decode=self._auto_decode, encoding=self._encoding)

    def on_connecting(self, url: str) -> None:
        # stomp.py announces a connection once its socket is open, which is when CONNECT
        # goes out: on_send below says it then.
        endpoint = parse_url(url)
        self._host_and_port = (endpoint.host, endpoint.port)
        self._opened = False

    def on_send(self, frame: NativeFrame) -> None:
        if frame.command in ("CONNECT", "STOMP") and not self._opened:
            self._opened = True
            self.call("on_connecting", self._host_and_port)
        self.call("on_send", self._frame(frame))

    def on_connected(self, frame: NativeFrame) -> None:
        if not self._holding:
            self.call("on_connected", self._frame(frame))

    def on_message(self, frame: NativeFrame) -> None:
        shown = self._frame(frame)
        self.call("on_before_message", shown)
        self.call("on_message", shown)

    def on_receipt(self, frame: NativeFrame) -> None:
        self.call("on_receipt", self._frame(frame))

    def on_error(self, frame: NativeFrame) -> None:
        self.call("on_error", self._frame(frame))

    def on_heartbeat(self) -> None:
        self.call("on_heartbeat")

    def on_heartbeat_timeout(self) -> None:
        self.call("on_heartbeat_timeout")

    def on_disconnected(self, reason: BaseException | None) -> None:
        if not self._opened:
            return  # no socket was opened: stomp.py reports nothing for such an attempt
        self._opened = False
        self.call("on_disconnected")
        self.call("on_receiver_loop_completed", None)
