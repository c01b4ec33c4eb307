"""What the client says on the wire, for the log: every frame in both directions.

Loggers (all under ``stompws``, which has a NullHandler until the application configures
logging):

* ``stompws.wire`` at DEBUG: each frame sent (``>>>``) and received (``<<<``) with its
  command, headers and body length, and at most the first ``BODY_SHOWN`` bytes of the body.
* ``stompws.wire.heartbeat`` at DEBUG: each heart-beat sent and received. A logger of its
  own, so that an application can keep the frames and silence the beats:
  ``logging.getLogger("stompws.wire.heartbeat").setLevel(logging.INFO)``.

Credentials never reach the log: the value of every header whose name speaks of one
(``passcode``, and any name holding ``pass``, ``secret``, ``token`` or ``auth``) is shown as
``***``. Nothing here runs unless the logger is enabled for DEBUG: the caller checks
``WIRE.isEnabledFor`` (a cached lookup) once per batch, so the hot path pays one check.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Final

from .frame import Frame
from .protocol import Event, HeartbeatReceived, ProtocolViolation

__all__ = ["BODY_SHOWN", "HEARTBEATS", "WIRE", "describe", "log_received", "log_sent"]

WIRE: Final = logging.getLogger("stompws.wire")
HEARTBEATS: Final = logging.getLogger("stompws.wire.heartbeat")
BODY_SHOWN: Final = 100  # bytes of a body shown at most
_SECRET_WORDS: Final = ("pass", "secret", "token", "auth")
_HIDDEN: Final = "***"


def _shown(name: str, value: str) -> str:
    lowered = name.lower()
    return _HIDDEN if any(word in lowered for word in _SECRET_WORDS) else value


def describe(frame: Frame) -> str:
    """One line: ``COMMAND name:value, ... | N B b'first bytes'``; secrets hidden."""
    headers = ", ".join(f"{name}:{_shown(name, value)!r}" for name, value in frame.header_list)
    body = frame.body
    size = len(body)
    if not size:
        return f"{frame.command} {{{headers}}}"
    more = "..." if size > BODY_SHOWN else ""
    return f"{frame.command} {{{headers}}} {size} B {body[:BODY_SHOWN]!r}{more}"


def log_sent(where: object, frames: Iterable[Frame]) -> None:
    """Log frames going out on ``where`` (a connection, shown by its repr)."""
    for frame in frames:
        WIRE.debug("%r >>> %s", where, describe(frame))


def log_received(where: object, events: Iterable[Event]) -> None:
    """Log what came in on ``where``: the session's events for the frames and heart-beats
    (a ``ProtocolViolation`` is logged as an error where the connection ends)."""
    for event in events:
        kind = type(event)
        if kind is HeartbeatReceived:
            HEARTBEATS.debug("%r <<< heart-beat", where)
        elif kind is not ProtocolViolation:
            WIRE.debug("%r <<< %s", where, describe(event.frame))  # type: ignore[union-attr]
