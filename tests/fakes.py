"""A fake STOMP broker that runs one script for every connection, for client tests.

Each accepted connection runs ``script(peer)`` on its own thread. The sockets are
tests/support/peer.py's ``ScriptedPeer`` (TCP on 127.0.0.1, or WebSocket over it): ``Peer``
reads what the client sent one frame at a time and writes raw bytes (over WebSocket, one
message each), so a script can send exactly what a broken broker would. A test that
scripts each connection from its own thread uses ``ScriptedPeer`` directly.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Callable, Iterator

from stompws import Frame, FrameParser, Heartbeat

from .support.peer import PeerConnection, ScriptedPeer, TransportName
from .support.ports import refusing_port

_numbers = itertools.count(1)


class Peer:
    """One client connection as a script sees it.

    It parses the client's bytes itself, when the script asks, not as they arrive: a
    script may change ``parser.version`` once CONNECTED is sent, and the frames after it
    must be read at that version. ``raw`` is every byte the client sent so far.
    """

    def __init__(self, connection: PeerConnection) -> None:
        self.connection = connection
        self.parser = FrameParser("1.2")
        self.pending: list[Frame | Heartbeat] = []
        self._parsed = 0  # how much of the client's byte stream the parser has seen

    @property
    def raw(self) -> bytes:
        return self.connection.received_bytes

    def _unparsed(self) -> bytes | None:
        """What came since the last read; b"" when nothing did yet, None once the client
        ended and everything was read."""
        data = self.connection.received_bytes[self._parsed :]
        if not data and self.connection.client_ended:
            return None
        return data

    def next(self, timeout: float = 5.0) -> Frame | Heartbeat | None:
        """The next frame or heart-beat from the client; None when it closed, or sent
        nothing for ``timeout`` seconds (scripts wait out a client that stays silent)."""
        while not self.pending:
            try:
                self.connection.wait_until(lambda: self._unparsed() != b"", "bytes", timeout)
            except AssertionError:  # ScriptedPeer's "nothing within timeout"
                return None
            data = self._unparsed()
            if data is None:
                return None
            self._parsed += len(data)
            self.pending += self.parser.feed(data)
        return self.pending.pop(0)

    def frame(self, timeout: float = 5.0) -> Frame | None:
        """The next frame (skipping heart-beats); None when the client closed."""
        while True:
            item = self.next(timeout)
            if item is None or isinstance(item, Frame):
                return item

    def send(self, data: bytes) -> None:
        """Raises OSError once the client has ended its side (ScriptedPeer then ends ours):
        scripts that beat until the client goes stop on it."""
        self.connection.send_raw(data)

    def send_frame(self, command: str, headers: dict[str, str], body: bytes = b"") -> None:
        # The library's own encoding (escaped header values), not ScriptedPeer's raw bytes.
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
    def __init__(self, script: Callable[[Peer], None], transport: TransportName = "tcp") -> None:
        self.script = script
        self.errors: list[BaseException] = []
        self.done = threading.Event()
        self._threads: list[threading.Thread] = []
        # The scripts answer DISCONNECT themselves (answer_receipts_until_disconnect).
        self._peer = ScriptedPeer(transport, answer_disconnect=False, on_accept=self._start)
        self.port = self._peer.port
        self.url = self._peer.url

    def _start(self, connection: PeerConnection) -> None:
        thread = threading.Thread(
            target=self._run,
            args=(connection,),
            name=f"peer-script-{next(_numbers)}",
            daemon=True,
        )
        self._threads.append(thread)
        thread.start()

    def _run(self, connection: PeerConnection) -> None:
        try:
            self.script(Peer(connection))
        except BaseException as error:  # reported by close()
            self.errors.append(error)
        finally:
            connection.close()  # the script's end is the connection's, as with a broker
            self.done.set()

    def close(self) -> None:
        self._peer.refuse()  # no new connection, so no new script thread
        for thread in self._threads:
            thread.join(10)
        self._peer.close()
        if self.errors:
            raise self.errors[0]


@contextlib.contextmanager
def fake_broker(
    script: Callable[[Peer], None], transport: TransportName = "tcp"
) -> Iterator[FakeBroker]:
    broker = FakeBroker(script, transport)
    try:
        yield broker
    finally:
        broker.close()


def free_port() -> int:
    """A port on 127.0.0.1 where nothing listens (kept so for the session)."""
    return refusing_port()
