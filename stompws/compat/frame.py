"""The frame that stomp.py-shaped listeners receive: ``.cmd``, ``.headers``, ``.body``."""

from __future__ import annotations

from typing import Any

from ..frame import Frame as NativeFrame

__all__ = ["Frame", "from_native"]

_SECRETS = frozenset({"passcode", "authorization"})


class Frame:
    """A STOMP frame as stomp.py 9 hands it to listeners.

    ``headers`` is a plain dict (changes made by one listener are seen by the next, as in
    stomp.py); ``original_headers`` is a copy taken when the frame was made. ``body`` is
    ``str`` when the connection has ``auto_decode`` (the default), else ``bytes``.
    """

    def __init__(self, cmd: str | None, headers: dict[str, Any] | None = None, body: Any = None):
        self.cmd = cmd
        self.headers: dict[str, Any] = headers if headers is not None else {}
        self.original_headers = dict(self.headers)
        self.body = body

    def __str__(self) -> str:
        shown = {k: "***" if k.lower() in _SECRETS else v for k, v in self.headers.items()}
        return f"{self.cmd} {shown} {self.body!r}"

    __repr__ = __str__


def from_native(frame: NativeFrame, *, auto_decode: bool, encoding: str) -> Frame:
    """The compat frame for one of ours; the body decoded with the connection's encoding,
    undecodable bytes replaced (as stomp.py does), when ``auto_decode``."""
    body: str | bytes = frame.body.decode(encoding, "replace") if auto_decode else frame.body
    return Frame(frame.command, dict(frame.headers), body)
