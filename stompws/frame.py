"""The STOMP frame and its encoder.

Encoding strategy: the header lines of a frame are first joined into one string and checked
with a handful of C-level scans (``in``, ``count``). Only when that block holds a character
that needs escaping, or that the version cannot carry, do we fall back to escaping the
headers one by one. Most frames take the fast path.

Escaping rules by version (STOMP 1.1 and 1.2 specs, "Value Encoding"):

* 1.0 has no escapes: a CR, LF or NUL in a header, or a colon in a header name, cannot be
  carried and is refused with ``UsageError`` instead of being put on the wire.
* 1.1 escapes ``\\`` ``\\n`` ``\\c``; it has no escape for CR, so a CR is refused.
* 1.2 also escapes ``\\r``.
* CONNECT and CONNECTED are never escaped, in any version, so they refuse what 1.0 refuses.
* NUL is refused everywhere: no version can escape it, and peers that read a frame without
  content-length would end the frame there.
"""

from __future__ import annotations

import codecs
import functools
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Final

from .errors import UsageError

__all__ = ["NO_ESCAPE_COMMANDS", "VERSIONS", "Frame", "Headers"]

VERSIONS: Final = ("1.0", "1.1", "1.2")
NO_ESCAPE_COMMANDS: Final = frozenset({"CONNECT", "STOMP", "CONNECTED"})
# The commands the specs define (a peer may use others).
COMMANDS: Final = frozenset(
    {"CONNECT", "STOMP", "CONNECTED", "SEND", "SUBSCRIBE", "UNSUBSCRIBE", "ACK", "NACK", "BEGIN"}
    | {"COMMIT", "ABORT", "DISCONNECT", "MESSAGE", "RECEIPT", "ERROR"}
)

Headers = Mapping[str, str] | Iterable[tuple[str, str]]

_ESCAPES_11: Final = {"\\": "\\\\", "\n": "\\n", ":": "\\c"}
_ESCAPES_12: Final = {**_ESCAPES_11, "\r": "\\r"}
_ESCAPE_TABLE_11: Final = str.maketrans(_ESCAPES_11)
_ESCAPE_TABLE_12: Final = str.maketrans(_ESCAPES_12)


class Frame:
    """One STOMP frame: a command, headers and a body of bytes.

    ``headers`` is a dict in which, for a header repeated on the wire, the first occurrence
    wins (as the spec requires); ``header_list`` keeps every header in wire order.
    """

    __slots__ = ("_pairs", "body", "command", "headers")

    command: str
    headers: dict[str, str]
    body: bytes
    # Read through getattr with a default: the parser sets it only for repeated headers, so
    # that it builds a frame with three stores. __init__ always sets it, as a getattr that
    # misses costs more than the store.
    _pairs: list[Any] | None

    def __init__(
        self, command: str, headers: Headers | None = None, body: bytes | str = b""
    ) -> None:
        self.command = command
        self._pairs = None
        if headers is None:
            self.headers = {}
        elif headers.__class__ is dict or isinstance(headers, Mapping):
            self.headers = {str(k): str(v) for k, v in headers.items()}
        else:
            pairs = [(str(k), str(v)) for k, v in headers]
            self.headers = _first_wins(pairs)
            if len(self.headers) != len(pairs):
                self._pairs = pairs
        if body.__class__ is not bytes:
            body = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        self.body = body

    @property
    def header_list(self) -> list[tuple[str, str]]:
        """Every header in wire order, repeated ones included."""
        pairs = getattr(self, "_pairs", None)
        if pairs is None:
            return list(self.headers.items())
        return [(name, value) for name, value in pairs]

    @property
    def text(self) -> str:
        """The body decoded by the charset named in content-type (UTF-8 when none is named).

        Bytes that are not valid in that charset raise ``UnicodeDecodeError``. A charset
        Python does not know (``charset=bogus``, from a careless or hostile sender) is read
        as UTF-8 with invalid bytes replaced by U+FFFD: a message must never be unreadable
        because of its label.
        """
        named = self._named_charset()
        if named is None or _known_charset(named):
            return self.body.decode(named or "utf-8")
        return self.body.decode("utf-8", "replace")

    @property
    def charset(self) -> str:
        """The charset named in content-type if Python knows it, else ``"utf-8"``."""
        named = self._named_charset()
        return named if named is not None and _known_charset(named) else "utf-8"

    def _named_charset(self) -> str | None:
        content_type = self.headers.get("content-type", "")
        for parameter in content_type.split(";")[1:]:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "charset" and value.strip():
                return value.strip().strip('"')
        return None

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.text)

    def encode(self, version: str = "1.2", *, content_length: bool = True) -> bytes:
        """The frame as bytes on the wire for ``version``.

        A content-length header with the body's size in bytes is written (replacing any the
        headers carry) unless ``content_length`` is false; ActiveMQ reads a frame without one
        as a TextMessage. Without it, the body must not contain a NUL byte.
        """
        return encode_frame(self, version, content_length)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.header_list)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Frame):
            return NotImplemented
        return (
            self.command == other.command
            and self.header_list == other.header_list
            and self.body == other.body
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        shown = {k: ("***" if k in _SECRET_HEADERS else v) for k, v in self.headers.items()}
        body = self.body if len(self.body) <= 60 else self.body[:60] + b"..."
        return f"Frame({self.command!r}, {shown!r}, body={body!r} ({len(self.body)} bytes))"


_SECRET_HEADERS: Final = frozenset({"passcode", "authorization", "Authorization"})


def _first_wins(pairs: list[tuple[str, str]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in pairs:
        headers.setdefault(name, value)
    return headers


def encode_frame(frame: Frame, version: str, content_length: bool) -> bytes:
    if version not in VERSIONS:
        raise UsageError(f"unknown STOMP version {version!r}; expected one of {VERSIONS}")
    command = frame.command
    if command not in COMMANDS and (not command or not command.isalpha() or not command.isupper()):
        raise UsageError(f"a STOMP command is upper-case letters, not {command!r}")
    body = frame.body
    if not content_length and body.find(b"\x00") >= 0:
        raise UsageError(
            "a body containing a NUL byte needs a content-length header; "
            "encode with content_length=True"
        )
    pairs = getattr(frame, "_pairs", None)
    if pairs is None:
        headers = frame.headers
        lines = [f"{name}:{value}\n" for name, value in headers.items() if name != "content-length"]
        block = "".join(lines)
        empty_name = "" in headers
    else:
        lines = [f"{name}:{value}\n" for name, value in pairs if name != "content-length"]
        block = "".join(lines)
        empty_name = block.startswith(":") or "\n:" in block
    if (
        "\\" in block
        or "\r" in block
        or "\x00" in block
        or block.count(":") != len(lines)
        or block.count("\n") != len(lines)
        or empty_name
    ):
        block = _escaped_block(
            [item for item in frame.header_list if item[0] != "content-length"], command, version
        )
    if content_length:
        head = f"{command}\n{block}content-length:{len(body)}\n\n"
    else:
        head = f"{command}\n{block}\n"
    return b"".join((head.encode(), body, b"\x00"))


def _escaped_block(pairs: list[tuple[str, str]], command: str, version: str) -> str:
    escaping = version != "1.0" and command not in NO_ESCAPE_COMMANDS
    table = _ESCAPE_TABLE_12 if version == "1.2" else _ESCAPE_TABLE_11
    lines = []
    for name, value in pairs:
        _check_header(name, value, command, version, escaping)
        if escaping:
            name = name.translate(table)
            value = value.translate(table)
        lines.append(f"{name}:{value}\n")
    return "".join(lines)


def _check_header(name: str, value: str, command: str, version: str, escaping: bool) -> None:
    where = f"header {name!r} of a {command} frame in STOMP {version}"
    if not name:
        raise UsageError(f"empty header name in a {command} frame")
    for text, part in ((name, "name"), (value, "value")):
        if "\x00" in text:
            raise UsageError(f"NUL byte in the {part} of {where}: no STOMP version can carry it")
        if not escaping and ("\n" in text or "\r" in text):
            raise UsageError(
                f"line break in the {part} of {where}, which is not escaped: it would "
                "end the header and inject what follows"
            )
        if escaping and version == "1.1" and "\r" in text:
            raise UsageError(f"CR in the {part} of {where}: STOMP 1.1 has no escape for CR")
    if not escaping and ":" in name:
        raise UsageError(f"colon in the name of {where}, which is not escaped")


@functools.lru_cache(maxsize=64)
def _known_charset(name: str) -> bool:
    try:
        info = codecs.lookup(name)
    except LookupError:
        return False
    # bytes.decode refuses the codecs that are not text encodings (base64, zlib) too.
    return getattr(info, "_is_text_encoding", True) is not False
