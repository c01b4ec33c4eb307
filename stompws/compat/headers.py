"""Headers and errors between stomp.py's calling conventions and the native client."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from ..errors import ConnectionClosed, NotConnected
from ..frame import Frame as NativeFrame
from .exception import (
    ConnectFailedException,
    ConnectionClosedException,
    NotConnectedException,
)

__all__ = ["as_pairs", "ignore", "merge", "translated"]


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Our errors as the stomp.py exceptions that are also ours (see ``exception``)."""
    try:
        yield
    except (NotConnectedException, ConnectionClosedException, ConnectFailedException):
        raise
    except NotConnected as error:
        raise NotConnectedException(str(error)) from error
    except ConnectionClosed as error:
        raise ConnectionClosedException(str(error), code=error.code) from error


def merge(*maps: Mapping[str, Any] | None) -> dict[str, Any]:
    """The maps merged, later ones winning, without the headers whose value is None (which
    stomp.py leaves off the wire)."""
    merged: dict[str, Any] = {}
    for item in maps:
        if item:
            merged.update(item)
    return {name: value for name, value in merged.items() if value is not None}


def as_pairs(headers: Mapping[str, Any]) -> list[tuple[str, str]]:
    """stomp.py sends a tuple value as the same header repeated."""
    result: list[tuple[str, str]] = []
    for name, value in headers.items():
        values = value if isinstance(value, tuple) else (value,)
        result.extend((name, str(item)) for item in values)
    return result


def ignore(frame: NativeFrame) -> None:
    """A subscription callback that keeps nothing: the listeners get every message, so the
    subscription need not buffer them for ``get()``."""
