"""A streaming STOMP frame parser: bytes in, frames and heart-beats out.

Strategy, chosen so that cost stays linear in the input and small frames stay cheap:

* When the parser holds no partial frame, a chunk is parsed where it lies (no copy). Only an
  incomplete tail is copied into a ``bytearray`` buffer; later chunks are appended to it and
  parsed frames are cut off its front (CPython makes that cut O(1)).
* While a frame is incomplete the parser remembers what it waits for: a byte count (the
  content-length is known), a NUL (no content-length: only the new bytes are searched) or the
  end of the header block (completed header lines are kept, so no line is read twice).
  A chunk that cannot finish the frame costs one append and one search of its own bytes.
* The header block of a frame with LF line ends is found with one ``find`` for the blank
  line, decoded once and split in C; CRLF line ends and oversized header blocks take a
  line-by-line path that checks the limits as each line completes.
* Limits (``max_frame_size``, ``max_header_count``, ``max_header_line``) are checked as soon
  as they can be crossed, before more is buffered: a content-length above the limit fails at
  once, a body without content-length fails when the bytes held pass the limit.

Errors are ``ProtocolError`` only. Frames completed before a malformed one in the same
``feed`` are not lost: they are in the exception's ``frames`` attribute. After an error the
parser stays broken and raises the same error again.
"""

from __future__ import annotations

from typing import Any, Final

from .errors import ProtocolError
from .frame import NO_ESCAPE_COMMANDS, VERSIONS, Frame

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "DEFAULT_MAX_HEADER_COUNT",
    "DEFAULT_MAX_HEADER_LINE",
    "HEARTBEAT",
    "FrameParser",
    "Heartbeat",
]

DEFAULT_MAX_FRAME_SIZE: Final = 16 * 1024 * 1024
DEFAULT_MAX_HEADER_COUNT: Final = 1000
DEFAULT_MAX_HEADER_LINE: Final = 128 * 1024

KNOWN_COMMANDS: Final = frozenset(
    {
        "CONNECT",
        "STOMP",
        "CONNECTED",
        "SEND",
        "SUBSCRIBE",
        "UNSUBSCRIBE",
        "ACK",
        "NACK",
        "BEGIN",
        "COMMIT",
        "ABORT",
        "DISCONNECT",
        "MESSAGE",
        "RECEIPT",
        "ERROR",
    }
)


class Heartbeat:
    """The type of ``HEARTBEAT``: an EOL received between frames."""

    __slots__ = ()
    _instance: Heartbeat | None = None

    def __new__(cls) -> Heartbeat:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "HEARTBEAT"

    def __reduce__(self) -> str:
        return "HEARTBEAT"


HEARTBEAT: Final = Heartbeat()

_WAIT_NOTHING: Final = 0
_WAIT_BYTES: Final = 1
_WAIT_NUL: Final = 2
_WAIT_HEADER_LINE: Final = 3


class _Incomplete(Exception):
    """Internal: the frame at the current position needs more bytes."""


class FrameParser:
    """Turns received bytes into ``Frame`` objects and ``HEARTBEAT`` sentinels.

    ``version`` selects header unescaping and may be changed once the session's version is
    negotiated (the CONNECTED frame itself is never unescaped).
    """

    def __init__(
        self,
        version: str = "1.2",
        *,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        max_header_count: int = DEFAULT_MAX_HEADER_COUNT,
        max_header_line: int = DEFAULT_MAX_HEADER_LINE,
    ) -> None:
        for name, limit in (
            ("max_frame_size", max_frame_size),
            ("max_header_count", max_header_count),
            ("max_header_line", max_header_line),
        ):
            if limit < 1:
                raise ValueError(f"{name} must be at least 1, not {limit}")
        self.max_frame_size = max_frame_size
        self.max_header_count = max_header_count
        self.max_header_line = max_header_line
        self._settings: tuple[str, int, int, int, bytes]
        self.version = version
        self._buffer = bytearray()
        self._stream_offset = 0  # bytes of the stream before _buffer[0], for error positions
        self._wait = _WAIT_NOTHING
        self._wait_at = 0  # _WAIT_BYTES: length needed; _WAIT_NUL/_HEADER_LINE: search from
        self._header_lines: list[bytes] = []  # completed lines of an incomplete header block
        self._header_resume = 0  # where, from the frame's start, the next header line starts
        self._broken: ProtocolError | None = None

    @property
    def buffered(self) -> int:
        """How many bytes of an incomplete frame the parser holds."""
        return len(self._buffer)

    @property
    def version(self) -> str:
        return self._settings[0]

    @version.setter
    def version(self, version: str) -> None:
        if version not in VERSIONS:
            raise ValueError(f"unknown STOMP version {version!r}; expected one of {VERSIONS}")
        self._settings = (
            version,
            self.max_frame_size,
            min(self.max_frame_size, (self.max_header_count + 1) * (self.max_header_line + 1)),
            self.max_header_line,
            b"\n:" * self.max_header_count,
        )

    def feed(self, data: bytes) -> list[Frame | Heartbeat]:
        """Parse ``data``; return the frames and heart-beats it completes, in order."""
        if self._broken is not None:
            raise self._broken
        buffer = self._buffer
        if buffer:
            buffer += data
            if not self._may_complete(len(data)):
                return []
            buf: bytes | bytearray = buffer
        elif type(data) is bytes:
            buf = data
        else:
            buf = bytes(data)
        out: list[Frame | Heartbeat] = []
        try:
            pos = self._parse(buf, out)
        except ProtocolError as error:
            error.frames = out
            self._broken = error
            self._buffer = bytearray()
            raise
        if buf is buffer:
            del buffer[:pos]
        elif pos < len(buf):
            self._buffer = bytearray(memoryview(buf)[pos:])
        self._stream_offset += pos
        return out

    def _may_complete(self, added: int) -> bool:
        """Whether the bytes just appended can finish the frame waited for (cheap checks)."""
        buffer = self._buffer
        wait = self._wait
        if wait == _WAIT_BYTES:
            return len(buffer) >= self._wait_at
        if wait == _WAIT_NUL:
            start = max(self._wait_at, len(buffer) - added)
            if buffer.find(b"\x00", start) >= 0:
                return True
            if len(buffer) > self.max_frame_size:
                self._fail_limit_while_waiting(
                    f"frame without content-length is over max_frame_size={self.max_frame_size} "
                    "bytes and has no end yet"
                )
            return False
        if wait == _WAIT_HEADER_LINE:
            start = max(self._wait_at, len(buffer) - added)
            if buffer.find(b"\n", start) >= 0:
                return True
            if len(buffer) - self._wait_at > self.max_header_line + 1:
                self._fail_limit_while_waiting(
                    f"header line longer than max_header_line={self.max_header_line} bytes"
                )
            return False
        return True

    def _fail_limit_while_waiting(self, message: str) -> None:
        error = ProtocolError(message, offset=self._stream_offset)
        self._broken = error
        self._buffer = bytearray()
        raise error

    def _parse(self, buf: bytes | bytearray, out: list[Frame | Heartbeat]) -> int:
        """Append what ``buf`` completes to ``out``; return how many bytes were used."""
        pos = 0
        end_of_data = len(buf)
        version, max_frame, window, max_line, alternating = self._settings
        new_frame = object.__new__
        no_cr = b"\r" not in buf
        copy_body = buf.__class__ is bytearray
        resuming_header = self._wait == _WAIT_HEADER_LINE
        self._wait = _WAIT_NOTHING
        while pos < end_of_data:
            byte = buf[pos]
            if byte == 10:
                out.append(HEARTBEAT)
                pos += 1
                continue
            if byte == 13:
                if pos + 1 == end_of_data:
                    self._wait, self._wait_at = _WAIT_BYTES, 2
                    break
                if buf[pos + 1] != 10:
                    raise self._error("CR not followed by LF between frames", pos)
                out.append(HEARTBEAT)
                pos += 2
                continue

            blank = -1 if resuming_header else buf.find(b"\n\n", pos, pos + window)
            if blank >= 0 and (no_cr or buf.find(b"\r", pos, blank) < 0):
                raw = buf[pos:blank]
                body_start = blank + 2
                try:
                    text = raw.decode()
                except UnicodeDecodeError as error:
                    raise self._not_utf8(error, pos) from None
                # Line ends and colons alternating (the command line, then one colon per
                # header line; a NUL is kept too, to break the pattern) and a block no longer
                # than one line's limit: every limit holds and the names and values can be
                # cut apart in one step.
                separators = raw.translate(None, _ALL_BUT_SEPARATORS)
                if (
                    separators == alternating[: len(separators)]
                    and not len(separators) & 1
                    and len(raw) <= max_line
                ):
                    command, _, rest = text.partition("\n")
                    if "\\" in rest and version != "1.0" and command not in NO_ESCAPE_COMMANDS:
                        items = self._unescaped_items(rest, version, pos)
                    else:
                        items = rest.replace(":", "\n").split("\n")
                    cut = iter(items)
                    headers = dict(zip(cut, cut, strict=False))  # count is even
                    pairs = None
                    if len(headers) != len(items) // 2 or "" in headers:
                        pairs = list(zip(items[::2], items[1::2], strict=True))
                        headers = self._first_wins(pairs, pos)
                else:
                    command, headers, pairs = self._split_header(text, version, pos)
            else:
                try:
                    text, body_start = self._header_by_lines(buf, pos, resuming_header)
                except _Incomplete:
                    break
                resuming_header = False
                command, headers, pairs = self._split_header(text, version, pos)
            if command not in KNOWN_COMMANDS and not (
                command.isascii() and command.isalpha() and command.isupper()
            ):
                raise self._error(f"invalid command line {command[:80]!r}", pos)

            length_text = headers.get("content-length")
            if length_text is not None:
                if not (length_text.isascii() and length_text.isdigit()):
                    raise self._error(f"content-length is not a number: {length_text!r}", pos)
                stop = body_start + int(length_text)
                if stop - pos > max_frame:
                    raise self._error(
                        f"{command} frame of {stop - pos} bytes (content-length "
                        f"{length_text}) is over max_frame_size={max_frame}",
                        pos,
                    )
                if stop >= end_of_data:
                    self._wait, self._wait_at = _WAIT_BYTES, stop + 1 - pos
                    break
                if buf[stop] != 0:
                    raise self._error(
                        f"{command} frame body is not followed by NUL at the end given by "
                        f"content-length {length_text}",
                        stop,
                    )
            else:
                stop = buf.find(b"\x00", body_start)
                if stop < 0:
                    if end_of_data - pos > max_frame:
                        raise self._error(
                            f"{command} frame without content-length is over "
                            f"max_frame_size={max_frame} bytes and has no end yet",
                            pos,
                        )
                    self._wait, self._wait_at = _WAIT_NUL, end_of_data - pos
                    break
                if stop - pos > max_frame:
                    raise self._error(
                        f"{command} frame of {stop - pos} bytes is over max_frame_size={max_frame}",
                        pos,
                    )
            frame = new_frame(Frame)
            frame.command = command
            frame.headers = headers
            # A slice of bytes is bytes; only the bytearray buffer needs a copy.
            frame.body = bytes(buf[body_start:stop]) if copy_body else buf[body_start:stop]  # type: ignore[assignment]
            if pairs is not None:
                frame._pairs = pairs
            out.append(frame)
            pos = stop + 1
        return pos

    def _header_by_lines(self, buf: bytes | bytearray, pos: int, resuming: bool) -> tuple[str, int]:
        """The header block at ``pos`` read line by line: CRLF ends, and limits per line.

        Completed lines are kept between calls so that a header block arriving in pieces
        is read once.
        """
        if resuming:
            lines = self._header_lines
            line_start = pos + self._header_resume
        else:
            lines = self._header_lines = []
            line_start = pos
        max_line = self.max_header_line
        max_lines = self.max_header_count + 1
        while True:
            newline = buf.find(b"\n", line_start, line_start + max_line + 2)
            if newline < 0:
                if len(buf) - line_start > max_line + 1:
                    raise self._error(
                        f"header line longer than max_header_line={max_line} bytes", line_start
                    )
                self._wait, self._wait_at = _WAIT_HEADER_LINE, line_start - pos
                self._header_resume = line_start - pos
                raise _Incomplete
            line = bytes(buf[line_start:newline])
            if line.endswith(b"\r"):
                line = line[:-1]
            line_start = newline + 1
            if not line:
                self._header_lines = []
                raw = b"\n".join(lines)
                try:
                    return raw.decode(), line_start
                except UnicodeDecodeError as error:
                    raise self._not_utf8(error, pos) from None
            if len(line) > max_line:
                raise self._error(
                    f"header line of {len(line)} bytes is over max_header_line={max_line}",
                    newline - len(line),
                )
            lines.append(line)
            if line_start - pos > self.max_frame_size:
                raise self._error(
                    f"header block is over max_frame_size={self.max_frame_size} bytes", pos
                )
            if len(lines) > max_lines:
                raise self._error(
                    f"more than max_header_count={self.max_header_count} headers", pos
                )

    def _split_header(
        self, text: str, version: str, pos: int
    ) -> tuple[str, dict[str, str], list[Any] | None]:
        """Command and headers from a header block that the one-step cut cannot take:
        a colon in a value, a line without one, or a limit to check."""
        command, _, rest = text.partition("\n")
        if not rest:
            return command, {}, None
        if "\x00" in rest:
            raise self._error("NUL character in the header block", pos)
        lines = rest.split("\n")
        if len(lines) > self.max_header_count:
            raise self._error(f"more than max_header_count={self.max_header_count} headers", pos)
        longest = max(map(len, lines))
        if longest > self.max_header_line:
            raise self._error(
                f"header line of {longest} characters is over "
                f"max_header_line={self.max_header_line}",
                pos,
            )
        pairs = []
        for line in lines:
            name, colon, value = line.partition(":")
            if not colon:
                raise self._error(f"header line without a colon: {line[:80]!r}", pos)
            pairs.append((name, value))
        if "\\" in rest and version != "1.0" and command not in NO_ESCAPE_COMMANDS:
            pairs = [
                (_unescape(name, version, self, pos), _unescape(value, version, self, pos))
                for name, value in pairs
            ]
        headers = self._first_wins(pairs, pos)
        return command, headers, (pairs if len(headers) != len(pairs) else None)

    def _unescaped_items(self, rest: str, version: str, pos: int) -> list[str]:
        """Names and values, alternating, of header lines that have one colon each."""
        if "\x00" in rest:
            raise self._error("NUL character in the header block", pos)
        # NUL marks the cuts so that unescaping (which makes colons and line ends) can run
        # over the whole block at once.
        flat = _unescape(rest.replace(":", "\x00").replace("\n", "\x00"), version, self, pos)
        return flat.split("\x00")

    def _first_wins(self, pairs: list[Any], pos: int) -> dict[str, str]:
        headers: dict[str, str] = {}
        for name, value in pairs:
            if not name:
                raise self._error("header with an empty name", pos)
            headers.setdefault(name, value)
        return headers

    def _not_utf8(self, error: UnicodeDecodeError, pos: int) -> ProtocolError:
        return self._error(
            f"header block is not valid UTF-8 ({error.reason} at byte {error.start} of the frame)",
            pos + error.start,
        )

    def _error(self, message: str, pos: int) -> ProtocolError:
        return ProtocolError(message, offset=self._stream_offset + pos)


_ALL_BUT_SEPARATORS: Final = bytes(i for i in range(256) if i not in b":\n\x00")
_UNESCAPES: Final = {"\\\\": "\\", "\\n": "\n", "\\c": ":", "\\r": "\r"}


def _unescape(text: str, version: str, parser: FrameParser, pos: int) -> str:
    if "\\" not in text:
        return text
    if "\x01" not in text:
        # str.replace pairs backslashes left to right, as an escape reader does, so the
        # escaped backslashes can be set aside under a placeholder first; any backslash
        # left after the defined escapes are replaced starts an undefined one.
        result = text.replace("\\\\", "\x01").replace("\\c", ":").replace("\\n", "\n")
        if version == "1.2":
            result = result.replace("\\r", "\r")
        if "\\" not in result:
            return result.replace("\x01", "\\")
    index = 0
    parts = []
    while True:
        slash = text.find("\\", index)
        if slash < 0:
            parts.append(text[index:])
            return "".join(parts)
        parts.append(text[index:slash])
        escape = text[slash : slash + 2]
        replacement = _UNESCAPES.get(escape)
        if replacement is None or (escape == "\\r" and version != "1.2"):
            raise parser._error(
                f"undefined escape {escape!r} in header {text[:80]!r} (STOMP {version})", pos
            )
        parts.append(replacement)
        index = slash + 2
