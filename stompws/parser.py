"""A streaming STOMP frame parser: bytes in, frames and heart-beats out.

Strategy, chosen so that cost stays linear in the input and small frames stay cheap:

* When the parser holds no partial frame, a chunk is parsed where it lies (no copy).
* A frame whose body is incomplete waits with its header already read: the chunks that
  follow are kept in a list (one append each, and for a body without content-length one
  search of the new chunk for the NUL) and the body is joined from them once, when its end
  arrives, so a large body costs one copy however finely it is cut up.
* Any other incomplete tail (a header block cut short, a CR between frames) is copied into
  a ``bytearray`` buffer; later chunks are appended to it and parsed frames are cut off its
  front (CPython makes that cut O(1)). Completed header lines are kept, so that no line is
  read twice; a chunk that cannot finish the line waited for costs one append and search.
* The header block of a frame with LF line ends is found with one ``find`` for the blank
  line, checked with one ``translate``, and decoded and split in C; CRLF line ends, a colon
  in a value and oversized blocks take a per-line path that checks the limits line by line.
* Limits (``max_frame_size``, ``max_header_count``, ``max_header_line``) are checked as soon
  as they can be crossed, before more is buffered: a content-length above the limit fails at
  once, a body without content-length fails when the bytes held pass the limit.

Errors are ``ProtocolError`` only. Frames completed before a malformed one in the same ``feed``
are kept in the exception's ``frames``. After an error the parser stays broken.
"""

from __future__ import annotations

from typing import Any, Final

from .errors import ProtocolError
from .frame import COMMANDS, NO_ESCAPE_COMMANDS, VERSIONS, Frame

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

KNOWN_COMMANDS: Final = COMMANDS


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
_WAIT_HEADER_LINE: Final = 3

# A frame waiting for its body: command, headers, pairs, body start (from the frame's start),
_MAX_LENGTH_DIGITS: Final = 18  # more than any max_frame_size a process could hold
# content-length text (None: the body ends at a NUL) and the settings it was read with.
_Head = tuple[str, dict[str, str], "list[Any] | None", int, "str | None", tuple[Any, ...]]


class _Incomplete(Exception):
    """Internal: the frame at the current position needs more bytes."""


class FrameParser:
    """Turns received bytes into ``Frame`` objects and ``HEARTBEAT`` sentinels.

    ``version`` selects header unescaping and may be changed once the session's version is
    negotiated (the CONNECTED frame itself is never unescaped). 1.0 unescapes nothing; 1.1
    and 1.2 read the same escapes, ``\\r`` included (1.1 does not define it, RabbitMQ sends
    it): a ``ProtocolError`` names the header of any other.
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
        self._settings: tuple[str, int, int, int, bytes, frozenset[bytes]]
        self.version = version
        self._buffer = bytearray()
        self._stream_offset = 0  # bytes of the stream before _buffer[0], for error positions
        self._wait = _WAIT_NOTHING
        self._wait_at = 0  # _WAIT_BYTES: length needed; _WAIT_HEADER_LINE: search from
        # Completed lines of an incomplete header block as (start, end) from the frame's
        # start: offsets, not copies, so a block that never ends is held once.
        self._header_lines: list[tuple[int, int]] = []
        self._header_resume = 0  # where, from the frame's start, the next header line starts
        # A frame waiting for its body: the chunks held (the first starts with the frame),
        # how many bytes they hold, how many the frame needs (0: up to a NUL) and its head.
        self._chunks: list[bytes | bytearray | memoryview] | None = None
        self._held = 0
        self._need = 0
        self._head: _Head | None = None
        self._broken: ProtocolError | None = None

    @property
    def buffered(self) -> int:
        """How many bytes of an incomplete frame the parser holds."""
        return len(self._buffer) if self._chunks is None else self._held

    @property
    def version(self) -> str:
        """The STOMP version whose rules the parser applies (escapes, CR); set it once the
        broker's CONNECTED says which (``ValueError`` for an unknown one)."""
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
            # The marks of common blocks of up to 64 headers, found with one hash lookup.
            frozenset(b"\n:" * count for count in range(min(self.max_header_count, 64) + 1)),
        )

    def feed(self, data: bytes) -> list[Frame | Heartbeat]:
        """Parse ``data``; return the frames and heart-beats it completes, in order."""
        buf: bytes | bytearray
        chunks = self._chunks
        if chunks is not None:
            # Keeping the chunk is all that most calls during a large body do.
            if data.__class__ is not bytes:
                data = bytes(data)
            chunks.append(data)
            held = self._held = self._held + len(data)
            if held < self._need:
                return []
            resumed = self._end_of_body(chunks, data)
            if resumed is None:
                return []
            buf, pos, out = resumed
            from_buffer = buf is self._buffer
            resuming_header = False
        else:
            if self._broken is not None:
                raise self._broken
            buf = self._buffer
            if buf:
                buf += data
                if not self._may_complete(len(data)):
                    return []
                from_buffer = True
                resuming_header = self._wait == _WAIT_HEADER_LINE
                self._wait = _WAIT_NOTHING
            else:
                buf = data if data.__class__ is bytes else bytes(data)
                from_buffer = resuming_header = False
            pos = 0
            out = []

        end_of_data = len(buf)
        settings = self._settings
        version, max_frame, window, max_line, _, common = settings
        new_frame = object.__new__
        copy_body = buf.__class__ is not bytes
        # Set once a blank line found was not the end of the header block before it (CRLF
        # line ends): from then on the search for it resumes where it stopped (blank_at,
        # no_blank_before), so that nothing is scanned twice, and a CR is looked for first.
        careful = False
        blank_at = no_blank_before = 0
        need = -1  # set when the frame at pos waits for its body: the bytes it needs (0: a NUL)
        try:
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

                if careful or resuming_header:
                    blank, marks = -1, None
                else:
                    blank = buf.find(b"\n\n", pos, pos + window)
                    # The common block: LF line ends, one colon in every header line, no longer
                    # than one line's limit and at most 64 headers, so that every limit holds.
                    # Its line ends, colons, CRs and NULs, kept in order, show all that at once.
                    if pos <= blank <= pos + max_line:
                        raw = bytes(buf[pos:blank]) if copy_body else buf[pos:blank]
                        marks = raw.translate(_SAME, _ALL_BUT_MARKS)
                    else:
                        marks = None
                if marks in common:
                    try:
                        text = raw.decode()
                    except UnicodeDecodeError as error:
                        raise self._not_utf8(error, pos) from None
                    # The command, then names and values, cut apart in one step.
                    if "\\" in text and version != "1.0":
                        items = self._unescaped_items(text, version, pos)
                    else:
                        items = text.replace(":", "\n").split("\n")
                    cut = iter(items)
                    command = next(cut)
                    # zip's strict= costs more than the rest of this line; the count is even.
                    headers = dict(zip(cut, cut))  # noqa: B905
                    pairs = None
                    if len(headers) != len(items) >> 1 or "" in headers:
                        pairs = list(zip(items[1::2], items[2::2], strict=True))
                        headers = self._first_wins(pairs, pos)
                    body_start = blank + 2
                else:
                    if careful:
                        if blank_at < pos:
                            blank_at = buf.find(b"\n\n", max(pos, no_blank_before), pos + window)
                            if blank_at < 0:
                                no_blank_before = pos + window - 1
                        blank = blank_at
                    try:
                        command, headers, pairs, body_start = self._read_header(
                            buf, pos, blank, marks, resuming_header
                        )
                    except _Incomplete:
                        break
                    if not (resuming_header or careful) and body_start != blank + 2:
                        careful = True
                        blank_at = blank
                        no_blank_before = pos + window - 1 if blank < 0 else 0
                    resuming_header = False
                if command not in KNOWN_COMMANDS and not (
                    command.isascii() and command.isalpha() and command.isupper()
                ):
                    raise self._error(f"invalid command line {command[:80]!r}", pos)

                length_text = headers.get("content-length")
                if length_text is not None:
                    if not (length_text.isascii() and length_text.isdigit()):
                        raise self._error(f"content-length is not a number: {length_text!r}", pos)
                    if len(length_text) > _MAX_LENGTH_DIGITS:
                        # int() of thousands of digits raises ValueError (and costs time)
                        # before the size check below could refuse it.
                        raise self._error(
                            f"content-length of {len(length_text)} digits is over "
                            f"max_frame_size={max_frame}",
                            pos,
                        )
                    stop = body_start + int(length_text)
                    if stop - pos > max_frame:
                        raise self._error(
                            f"{command} frame of {stop - pos} bytes (content-length "
                            f"{length_text}) is over max_frame_size={max_frame}",
                            pos,
                        )
                    if stop >= end_of_data:
                        need = stop + 1 - pos
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
                        need = 0
                        break
                    if stop - pos > max_frame:
                        raise self._error(
                            f"{command} frame of {stop - pos} bytes is over "
                            f"max_frame_size={max_frame}",
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
        except ProtocolError as error:
            error.frames = out
            self._broken = error
            self._buffer = bytearray()
            raise
        if need >= 0:
            self._head = (command, headers, pairs, body_start - pos, length_text, settings)
            self._need = need
        if pos < end_of_data or from_buffer:
            self._keep(buf, pos, from_buffer)
        self._stream_offset += pos
        return out

    def _keep(self, buf: bytes | bytearray, pos: int, from_buffer: bool) -> None:
        """Hold what ``feed`` left of ``buf`` from ``pos``: in the chunk list when the frame
        there waits for its body only, else in the buffer."""
        if self._head is not None:
            if from_buffer:
                del buf[:pos]  # type: ignore[union-attr]
                self._buffer = bytearray()
                tail = buf
            else:
                tail = buf[pos:] if pos else buf
            self._chunks = [tail]
            self._held = len(tail)
        elif from_buffer:
            del buf[:pos]  # type: ignore[union-attr]
        else:
            self._buffer = bytearray(memoryview(buf)[pos:])

    def _may_complete(self, added: int) -> bool:
        """Whether the bytes just appended can finish what the buffer waits for."""
        buffer = self._buffer
        wait = self._wait
        if wait == _WAIT_BYTES:
            return len(buffer) >= self._wait_at
        if wait == _WAIT_HEADER_LINE:
            start = max(self._wait_at, len(buffer) - added)
            if buffer.find(b"\n", start) >= 0:
                return True
            if len(buffer) - self._wait_at > self.max_header_line + 1:
                raise self._fail(
                    f"header line longer than max_header_line={self.max_header_line} bytes",
                    self._stream_offset,
                )
            return False
        return True

    def _end_of_body(
        self, chunks: list[bytes | bytearray | memoryview], data: bytes
    ) -> tuple[bytes | bytearray, int, list[Frame | Heartbeat]] | None:
        """Finish the frame waiting for its body if ``data``, just kept, holds its end: then
        return what to parse next, from where, and the frames completed so far."""
        assert self._head is not None
        command, headers, pairs, body_at, length_text, settings = self._head
        before = self._held - len(data)  # what the frame had before this chunk
        if self._need:
            stop = self._need - 1
            nul = stop - before
        else:
            nul = data.find(b"\x00")
            if nul < 0:
                if self._held > self.max_frame_size:
                    raise self._fail(
                        f"frame without content-length is over max_frame_size="
                        f"{self.max_frame_size} bytes and has no end yet",
                        self._stream_offset,
                    )
                return None
            stop = before + nul
        self._chunks = self._head = None
        if settings is not self._settings:
            # The version was set while the body was on its way: read the header again.
            self._buffer = bytearray().join(chunks)
            return self._buffer, 0, []
        if not self._need:
            if stop > settings[1]:
                raise self._fail(
                    f"{command} frame of {stop} bytes is over max_frame_size={settings[1]}",
                    self._stream_offset,
                )
        elif data[nul] != 0:
            raise self._fail(
                f"{command} frame body is not followed by NUL at the end given by "
                f"content-length {length_text}",
                self._stream_offset + stop,
            )
        chunks[0] = memoryview(chunks[0])[body_at:]
        chunks[-1] = memoryview(data)[:nul]
        frame = object.__new__(Frame)
        frame.command = command
        frame.headers = headers
        frame.body = b"".join(chunks)
        if pairs is not None:
            frame._pairs = pairs
        self._stream_offset += before
        return data, nul + 1, [frame]

    def _fail(self, message: str, offset: int) -> ProtocolError:
        """Break the parser on an error found where no frame was completed."""
        error = ProtocolError(message, offset=offset)
        self._broken = error
        self._buffer = bytearray()
        self._chunks = self._head = None
        return error

    def _read_header(
        self,
        buf: bytes | bytearray,
        pos: int,
        blank: int,
        marks: bytes | bytearray | None,
        resuming: bool,
    ) -> tuple[str, dict[str, str], list[Any] | None, int]:
        """Command, headers, pairs and body start of a block that ``feed`` could not take:
        ``blank`` is the first blank line after ``pos`` (-1: none), ``marks`` its marks."""
        version = self.version
        if blank >= 0 and (buf.find(b"\r", pos, blank) if marks is None else marks.find(b"\r")) < 0:
            raw = buf[pos:blank]
            try:
                text = raw.decode()
            except UnicodeDecodeError as error:
                raise self._not_utf8(error, pos) from None
            if marks is None and len(raw) <= self.max_header_line:
                marks = raw.translate(_SAME, _ALL_BUT_MARKS)
            if (
                marks is not None
                and marks == self._settings[4][: len(marks)]
                and not len(marks) & 1
            ):
                # Of the common kind after all (over 64 headers, or read carefully).
                if "\\" in text and version != "1.0":
                    items = self._unescaped_items(text, version, pos)
                else:
                    items = text.replace(":", "\n").split("\n")
                pairs = list(zip(items[1::2], items[2::2], strict=True))
                headers = self._first_wins(pairs, pos)
                duplicates = pairs if len(headers) != len(pairs) else None
                return items[0], headers, duplicates, blank + 2
            return (*self._split_header(text, version, pos), blank + 2)
        text, body_start = self._header_by_lines(buf, pos, resuming)
        return (*self._split_header(text, version, pos), body_start)

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
            end = newline - 1 if newline > line_start and buf[newline - 1] == 13 else newline
            length = end - line_start
            line_start = newline + 1
            if not length:
                self._header_lines = []
                raw = b"\n".join([bytes(buf[pos + a : pos + b]) for a, b in lines])
                try:
                    return raw.decode(), line_start
                except UnicodeDecodeError as error:
                    raise self._not_utf8(error, pos) from None
            if length > max_line:
                raise self._error(
                    f"header line of {length} bytes is over max_header_line={max_line}",
                    end - length,
                )
            lines.append((end - length - pos, end - pos))
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
            pairs = self._unescaped_pairs(pairs, version, pos)
        headers = self._first_wins(pairs, pos)
        return command, headers, (pairs if len(headers) != len(pairs) else None)

    def _unescaped_items(self, text: str, version: str, pos: int) -> list[str]:
        """The command, then names and values alternating, of a block of the common kind."""
        command, _, rest = text.partition("\n")
        if command in NO_ESCAPE_COMMANDS or "\\" not in rest:
            return text.replace(":", "\n").split("\n")
        # NUL (which such a block lacks) marks the cuts so that unescaping, which makes
        # colons and line ends, can run over the whole block at once.
        try:
            flat = _unescape(rest.replace(":", "\x00").replace("\n", "\x00"))
        except _UndefinedEscape:
            # Found again header by header, to name the header (the error path only).
            items = text.replace(":", "\n").split("\n")
            self._unescaped_pairs(list(zip(items[1::2], items[2::2], strict=True)), version, pos)
            raise self._error(f"undefined escape (STOMP {version})", pos) from None
        return f"{command}\x00{flat}".split("\x00")

    def _unescaped_pairs(
        self, pairs: list[tuple[str, str]], version: str, pos: int
    ) -> list[tuple[str, str]]:
        unescaped = []
        for name, value in pairs:
            try:
                name_text = _unescape(name)
            except _UndefinedEscape as undefined:
                raise self._undefined_escape(undefined, "name", name, version, pos) from None
            try:
                unescaped.append((name_text, _unescape(value)))
            except _UndefinedEscape as undefined:
                raise self._undefined_escape(undefined, "value", name, version, pos) from None
        return unescaped

    def _undefined_escape(
        self, undefined: _UndefinedEscape, part: str, name: str, version: str, pos: int
    ) -> ProtocolError:
        return self._error(
            f"undefined escape {undefined.escape!r} in the {part} of header {name[:80]!r} "
            f"(STOMP {version})",
            pos,
        )

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


# Every byte but the line end, colon, CR and NUL, whose sequence tells a common header block.
_ALL_BUT_MARKS: Final = bytes(i for i in range(256) if i not in b":\n\r\x00")
_SAME: Final = bytes(range(256))  # a translate with a table is cheaper than with None
_UNESCAPES: Final = {"\\\\": "\\", "\\n": "\n", "\\c": ":", "\\r": "\r"}


class _UndefinedEscape(Exception):
    """An escape that the version does not define; the caller names the header."""

    def __init__(self, escape: str) -> None:
        super().__init__(escape)
        self.escape = escape


def _unescape(text: str) -> str:
    """``text`` with the escapes of STOMP 1.1 and 1.2 replaced.

    ``\\r`` is read on 1.1 too, though only 1.2 defines it: RabbitMQ sends it on 1.1 for a
    CR in a header, and refusing it kills the session over one header. Being strict in what
    we send (frame.py refuses a CR on 1.1) and lenient here is the documented choice. Raises
    ``_UndefinedEscape`` for any other backslash sequence.
    """
    if "\\" not in text:
        return text
    if "\x01" not in text:
        # str.replace pairs backslashes left to right, as an escape reader does, so escaped
        # backslashes can be set aside under a placeholder first; a backslash left after the
        # defined escapes starts an undefined one. The rare escapes (each a pass over the
        # text, unlike the check for a backslash) are looked for only while one is left.
        result = text.replace("\\\\", "\x01").replace("\\c", ":")
        if "\\" in result:
            result = result.replace("\\n", "\n").replace("\\r", "\r")
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
        if replacement is None:
            raise _UndefinedEscape(escape)
        parts.append(replacement)
        index = slash + 2
