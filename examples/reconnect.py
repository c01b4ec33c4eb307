"""Heart-beats and reconnecting: a client that survives a broker going away.

Run it with ``python examples/reconnect.py`` (it starts the embedded test broker and breaks
it on purpose) or against your broker, credentials in the URL, and restart the broker
while it waits::

    python examples/reconnect.py ws://guest:guest@127.0.0.1:15674/ws

The client asks for heart-beats every 500 ms both ways, so a broker that stops talking
without closing the connection (a hung process, a dead network path) is declared dead
after ``max(sx, cy) × heartbeat_tolerance`` = 1 s. With ``reconnect=stompws.Reconnect(...)``
it then connects again with backoff and subscribes again with the same subscription ids:
the ``Subscription`` object keeps working across connections.

With the embedded broker it shows both kinds of failure: the connection cut at once
(``broker.drop_connections()``) and a broker that falls silent (``broker.stop_heartbeats()``),
which only heart-beats can detect.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
import uuid
from collections.abc import Iterator

import stompws
from stompws.testing import Broker

WAIT = 10.0  # seconds; anything slower is a failure, not a slow success
RESTART_WAIT = 60.0  # seconds to restart a real broker in


@contextlib.contextmanager
def broker_url(argv: list[str]) -> Iterator[tuple[str, Broker | None]]:
    """The URL given on the command line, or the embedded broker's (and the broker) while
    it runs."""
    if argv:
        yield argv[0], None
        return
    with Broker() as broker:
        print(f"no URL given: started the embedded test broker on {broker.ws_url}")
        yield broker.ws_url, broker


class Narrator(stompws.Listener):
    """Says what happens to the connection, and lets the main thread wait for it."""

    def __init__(self) -> None:
        self.connections = 0
        self.heartbeat_timeouts = 0
        self._changed = threading.Condition()

    def on_connected(self, frame: stompws.Frame) -> None:
        with self._changed:
            self.connections += 1
            self._changed.notify_all()
        print(f"  connected, heart-beat {frame.headers.get('heart-beat')} (sx,sy in ms)")

    def on_heartbeat_timeout(self) -> None:
        with self._changed:
            self.heartbeat_timeouts += 1
            self._changed.notify_all()
        print("  no heart-beat from the broker: it is declared dead")

    def on_disconnected(self, reason: BaseException | None) -> None:
        if reason is not None:
            print(f"  connection lost: {reason}")

    def wait(
        self, connections: int = 0, heartbeat_timeouts: int = 0, timeout: float = WAIT
    ) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while self.connections < connections or self.heartbeat_timeouts < heartbeat_timeouts:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"nothing of the kind happened within {timeout:g} s")
                self._changed.wait(remaining)


def round_trip(client: stompws.Client, queue: str, inbox: stompws.Subscription, text: str) -> None:
    client.send(queue, text)
    print(f"sent and received {inbox.get(timeout=WAIT).text!r} (session {client.session})")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    queue = f"/queue/survivor-{uuid.uuid4().hex[:8]}"
    narrator = Narrator()
    with broker_url(argv) as (url, broker):
        client = stompws.Client(
            url,
            heartbeats=(500, 500),
            reconnect=stompws.Reconnect(initial=0.1, maximum=2.0),
        )
        client.add_listener(narrator)
        try:
            client.connect()
            inbox = client.subscribe(queue, receipt=True)
            round_trip(client, queue, inbox, "before any trouble")

            if broker is not None:
                print("the broker cuts every connection")
                broker.drop_connections()
                narrator.wait(connections=2)
                round_trip(client, queue, inbox, "after the cut")

                print("the broker stops sending heart-beats, but keeps the connection open")
                broker.stop_heartbeats()
                narrator.wait(heartbeat_timeouts=1)
                broker.resume_heartbeats()
                narrator.wait(connections=3)
                round_trip(client, queue, inbox, "after the silence")
            else:
                print(f"restart the broker now; waiting up to {RESTART_WAIT:g} s for a reconnect")
                try:
                    narrator.wait(connections=2, timeout=RESTART_WAIT)
                except TimeoutError:
                    print("the connection was not lost: nothing to reconnect")
                else:
                    round_trip(client, queue, inbox, "after the restart")
        finally:
            client.disconnect()
        print(f"disconnected after {narrator.connections} connection(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
