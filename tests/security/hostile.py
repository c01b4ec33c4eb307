"""A hostile STOMP broker over TCP or WebSocket, for limit tests.

It speaks just enough of each protocol to get a client connected (a WebSocket handshake
by hand, a CONNECTED frame), then streams what the test wants: a header it writes once and
a filler it repeats up to a total, from buffers made before the test measures memory, so
that the broker adds nothing to the client's measured allocations. Over WebSocket the
whole stream is one message whose header announces its full length, as a broker that
wants the client to buffer it would send.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import struct
import threading
from collections.abc import Callable

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CONNECTED = b"CONNECTED\nversion:1.2\nheart-beat:0,0\n\n\x00"


class HostilePeer:
    def __init__(self, sock: socket.socket, websocket: bool) -> None:
        self.sock = sock
        self.websocket = websocket
        self._pending = bytearray()

    # -- reading what the client sends (small: CONNECT, SUBSCRIBE) --------------------------

    def _read_exactly(self, count: int) -> bytes:
        while len(self._pending) < count:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the client closed")
            self._pending += data
        taken = bytes(self._pending[:count])
        del self._pending[:count]
        return taken

    def read_message(self) -> bytes:
        """The next WebSocket message's payload (unmasked), or the next bytes over TCP."""
        if not self.websocket:
            if self._pending:
                taken = bytes(self._pending)
                self._pending.clear()
                return taken
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the client closed")
            return data
        _, second = self._read_exactly(2)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self._read_exactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", self._read_exactly(8))
        mask = self._read_exactly(4) if second & 0x80 else b"\0\0\0\0"
        payload = self._read_exactly(length)
        return bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))

    def wait_for(self, marker: bytes) -> None:
        seen = b""
        while marker not in seen:
            seen = seen[-len(marker) :] + self.read_message()

    # -- writing ---------------------------------------------------------------------------

    def header(self, length: int, opcode: int = 0x1) -> bytes:
        """A WebSocket frame header (server frames are not masked); b"" over TCP."""
        if not self.websocket:
            return b""
        if length < 126:
            return bytes((0x80 | opcode, length))
        if length < 1 << 16:
            return bytes((0x80 | opcode, 126)) + struct.pack("!H", length)
        return bytes((0x80 | opcode, 127)) + struct.pack("!Q", length)

    def send_message(self, data: bytes, opcode: int = 0x1) -> None:
        self.sock.sendall(self.header(len(data), opcode) + data)

    def stream(self, head: bytes, filler: memoryview, total: int, opcode: int = 0x1) -> int:
        """``head`` then ``filler`` repeated up to ``total`` bytes in all, as one message;
        returns how many bytes went out before the client stopped reading or closed."""
        sent = 0
        try:
            self.sock.sendall(self.header(total, opcode) + head)
            sent = len(head)
            while sent < total:
                piece = filler[: total - sent]
                self.sock.sendall(piece)
                sent += len(piece)
        except OSError:
            pass
        return sent

    def handshake(self) -> None:
        """Accept the WebSocket upgrade (any path, subprotocol v12.stomp)."""
        request = b""
        while b"\r\n\r\n" not in request:
            data = self.sock.recv(4096)
            if not data:
                raise ConnectionError("no handshake")
            request += data
        key = b""
        for line in request.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"sec-websocket-key":
                key = value.strip()
        accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
        self.sock.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n"
            b"Sec-WebSocket-Protocol: v12.stomp\r\n\r\n"
        )

    def accept_stomp(self) -> None:
        if self.websocket:
            self.handshake()
        self.wait_for(b"CONNECT")
        self.send_message(CONNECTED)


class HostileBroker:
    """Serves one connection with ``script(peer)`` on a thread; ``url`` to connect to."""

    def __init__(self, websocket: bool, script: Callable[[HostilePeer], None]) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        port = self.listener.getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}/ws" if websocket else f"stomp://127.0.0.1:{port}"
        self.websocket = websocket
        self.script = script
        self.failure: BaseException | None = None
        self.closed_by_client = threading.Event()
        self.thread = threading.Thread(target=self._serve, name="hostile-broker", daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            sock, _ = self.listener.accept()
        except OSError:
            return
        with sock:
            sock.settimeout(30.0)
            peer = HostilePeer(sock, self.websocket)
            try:
                peer.accept_stomp()
                self.script(peer)
                # Then wait for the client to close: it must, after a protocol error.
                while sock.recv(65536):
                    pass
                self.closed_by_client.set()
            except OSError:
                self.closed_by_client.set()  # reset or closed: the client went away
            except BaseException as error:
                self.failure = error

    def close(self) -> None:
        self.listener.close()
        self.thread.join(30.0)
        if self.failure is not None:
            raise self.failure

    def __enter__(self) -> HostileBroker:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
