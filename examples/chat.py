"""Two clients chatting on a topic: every subscriber of a /topic/ gets every message.

Run it with ``python examples/chat.py`` (it starts the embedded test broker) or against
your broker, credentials in the URL::

    python examples/chat.py ws://guest:guest@127.0.0.1:15674/ws
    python examples/chat.py stomp://guest:guest@127.0.0.1:61613

Alice and Bob each have their own ``stompws.Client``. Each subscribes to the room with a
callback, which the client's reader thread calls for every message. Bob answers Alice from
inside his callback: a callback may send, because no lock of the client is held while it
runs. The main thread only waits, with a timeout, until both have heard the whole chat.
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


@contextlib.contextmanager
def broker_url(argv: list[str]) -> Iterator[str]:
    """The URL given on the command line, or the embedded broker's while it runs."""
    if argv:
        yield argv[0]
        return
    with Broker() as broker:
        print(f"no URL given: started the embedded test broker on {broker.ws_url}")
        yield broker.ws_url


class Participant:
    def __init__(self, name: str, url: str, room: str) -> None:
        self.name = name
        self.room = room
        self.heard: list[str] = []
        self._changed = threading.Condition()
        # Heart-beats off: this short demo needs no liveness checks.
        self.client = stompws.Client(url, heartbeats=(0, 0))

    def join(self) -> None:
        self.client.connect()
        # receipt=True: return only once the broker has the subscription, so that nothing
        # said from now on can miss this participant (a topic keeps no messages).
        self.client.subscribe(self.room, callback=self.on_chat, receipt=True)
        print(f"{self.name} joined {self.room} (STOMP {self.client.version})")

    def say(self, text: str) -> None:
        self.client.send(self.room, text, headers={"sender": self.name})

    def on_chat(self, frame: stompws.Frame) -> None:
        sender = frame.headers.get("sender", "?")
        with self._changed:
            self.heard.append(f"{sender}: {frame.text}")
            self._changed.notify_all()
        if self.name == "bob" and sender == "alice":
            # On the reader thread, and sending is fine here.
            self.say(f"hi alice, I got {frame.text!r}")

    def wait_until_heard(self, count: int) -> list[str]:
        deadline = time.monotonic() + WAIT
        with self._changed:
            while len(self.heard) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{self.name} heard only {self.heard} within {WAIT:g} s")
                self._changed.wait(remaining)
            return list(self.heard)

    def leave(self) -> None:
        self.client.disconnect()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    room = f"/topic/chat-{uuid.uuid4().hex[:8]}"
    with broker_url(argv) as url:
        alice, bob = Participant("alice", url, room), Participant("bob", url, room)
        try:
            alice.join()
            bob.join()
            for line in ("hello bob", "how are you?"):
                print(f"alice says: {line}")
                alice.say(line)
            # Two lines from alice and bob's two answers: four messages each.
            for person in (alice, bob):
                transcript = person.wait_until_heard(4)
                print(f"{person.name} heard {len(transcript)} messages:")
                for line in transcript:
                    print(f"  {line}")
        finally:
            alice.leave()
            bob.leave()
        print("both left the room")
    return 0


if __name__ == "__main__":
    sys.exit(main())
