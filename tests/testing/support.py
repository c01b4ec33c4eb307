"""Bare STOMP peers for the broker's tests: they write exactly the bytes a test gives (also
bytes no client would produce) and read with the project's parser."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import websocket

from stompws import Frame, FrameParser, Heartbeat

WAIT = 5.0  # seconds any single wait in these tests may take before it counts as a failure


class RawPeer:
    """A STOMP peer on a raw TCP socket."""

    def __init__(self, url: str, *, version: str = "1.2") -> None:
        parts = urlsplit(url)
        assert parts.hostname is not None and parts.port is not None
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=WAIT)
        self.parser = FrameParser(version)
        self.pending: list[Frame | Heartbeat] = []

    def _recv(self, timeout: float) -> bytes | None:
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            return None
        return data or None

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_frame(
        self, command: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> None:
        self.send(Frame(command, headers or {}, body).encode(self.parser.version))

    def next(self, timeout: float = WAIT) -> Frame | Heartbeat | None:
        """The next frame or heart-beat; None once the broker closed the connection."""
        deadline = time.monotonic() + timeout
        while not self.pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"nothing from the broker within {timeout} s")
            data = self._recv(remaining)
            if data is None:
                return None
            self.pending += self.parser.feed(data)
        return self.pending.pop(0)

    def frame(self, timeout: float = WAIT) -> Frame | None:
        """The next frame, skipping heart-beats; None once the broker closed."""
        while True:
            item = self.next(timeout)
            if item is None or isinstance(item, Frame):
                return item

    def expect(self, command: str, timeout: float = WAIT) -> Frame:
        frame = self.frame(timeout)
        assert frame is not None, f"connection closed while waiting for {command}"
        assert frame.command == command, frame
        return frame

    def connect(self, **headers: str) -> Frame:
        headers = {"accept-version": "1.2", **headers}
        self.send_frame("CONNECT", {k.replace("_", "-"): v for k, v in headers.items()})
        connected = self.expect("CONNECTED")
        self.parser.version = connected.headers.get("version", "1.0")
        return connected

    def closed(self, timeout: float = WAIT) -> bool:
        """Whether the broker closes the connection within ``timeout`` (frames skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.next(max(deadline - time.monotonic(), 0.001)) is None:
                    return True
            except TimeoutError:
                return False

    def close(self) -> None:
        self.sock.close()


class RawWsPeer(RawPeer):
    """A STOMP peer on a raw WebSocket (websocket-client), one message per ``send``."""

    def __init__(
        self, url: str, *, version: str = "1.2", subprotocols: list[str] | None = None
    ) -> None:
        self.ws = websocket.create_connection(
            url, timeout=WAIT, subprotocols=subprotocols if subprotocols is not None else None
        )
        self.parser = FrameParser(version)
        self.pending = []
        self.opcodes: list[int] = []  # of each message received, in order

    @property
    def subprotocol(self) -> str | None:
        chosen: str | None = self.ws.subprotocol
        return chosen

    def _recv(self, timeout: float) -> bytes | None:
        self.ws.settimeout(timeout)
        try:
            opcode, data = self.ws.recv_data()
        except websocket.WebSocketTimeoutException:
            raise TimeoutError("no WebSocket message") from None
        except (websocket.WebSocketConnectionClosedException, ConnectionResetError):
            return None
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return None
        self.opcodes.append(opcode)
        return bytes(data)

    def send(self, data: bytes) -> None:
        self.ws.send(data, websocket.ABNF.OPCODE_BINARY)

    def close(self) -> None:
        self.ws.close(timeout=1)
