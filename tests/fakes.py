"""A scriptable fake STOMP peer over TCP on 127.0.0.1, for fault injection in client tests.

Each accepted connection runs ``script(peer)`` on its own thread; ``Peer`` reads frames with
the real parser and writes raw bytes, so a test can send exactly what a broken broker would.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator

from stompws import Frame, FrameParser, Heartbeat

from .support.ports import refusing_port


class Peer:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.parser = FrameParser("1.2")
        self.pending: list[Frame | Heartbeat] = []
        self.raw = bytearray()

    def next(self, timeout: float = 5.0) -> Frame | Heartbeat | None:
        """The next frame or heart-beat from the client; None when it closed."""
        self.sock.settimeout(timeout)
        while not self.pending:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return None
            if not data:
                return None
            self.raw += data
            self.pending += self.parser.feed(data)
        return self.pending.pop(0)

    def frame(self, timeout: float = 5.0) -> Frame | None:
        """The next frame (skipping heart-beats); None when the client closed."""
        while True:
            item = self.next(timeout)
            if item is None or isinstance(item, Frame):
                return item

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_frame(self, command: str, headers: dict[str, str], body: bytes = b"") -> None:
        self.send(Frame(command, headers, body).encode("1.2"))

    def accept_connect(self, heart_beat: str = "0,0", version: str = "1.2") -> Frame:
        connect = self.frame()
        assert connect is not None and connect.command == "CONNECT", connect
        self.send_frame("CONNECTED", {"version": version, "heart-beat": heart_beat})
        return connect

    def answer_receipts_until_disconnect(self) -> list[Frame]:
        """Answer every receipt request; return the frames seen until DISCONNECT or close."""
        seen: list[Frame] = []
        while True:
            frame = self.frame()
            if frame is None:
                return seen
            seen.append(frame)
            if "receipt" in frame.headers:
                self.send_frame("RECEIPT", {"receipt-id": frame.headers["receipt"]})
            if frame.command == "DISCONNECT":
                return seen


class FakeBroker:
    def __init__(self, script: Callable[[Peer], None]) -> None:
        self.script = script
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"stomp://127.0.0.1:{self.port}"
        self.errors: list[BaseException] = []
        self.done = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accepter = threading.Thread(target=self._accept, name="fake-broker", daemon=True)
        self._accepter.start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._run, args=(sock,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _run(self, sock: socket.socket) -> None:
        try:
            self.script(Peer(sock))
        except BaseException as error:  # reported by close()
            self.errors.append(error)
        finally:
            sock.close()
            self.done.set()

    def close(self) -> None:
        self.listener.close()
        for thread in self._threads:
            thread.join(10)
        if self.errors:
            raise self.errors[0]


@contextlib.contextmanager
def fake_broker(script: Callable[[Peer], None]) -> Iterator[FakeBroker]:
    broker = FakeBroker(script)
    try:
        yield broker
    finally:
        broker.close()


def free_port() -> int:
    """A port on 127.0.0.1 where nothing listens (kept so for the session)."""
    return refusing_port()
