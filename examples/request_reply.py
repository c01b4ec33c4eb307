"""Request and reply over STOMP: ``reply-to`` and ``correlation-id``.

Run it with ``python examples/request_reply.py`` (it starts the embedded test broker) or
against your broker, credentials in the URL::

    python examples/request_reply.py ws://guest:guest@127.0.0.1:15674/ws
    python examples/request_reply.py stomp://guest:guest@127.0.0.1:61613

A service subscribes to a request queue and answers each request on the destination in
its ``reply-to`` header, copying its ``correlation-id``. The caller matches replies to
requests by that id, so requests can be outstanding at the same time.

Where the replies go:

* On RabbitMQ the caller puts ``reply-to:/temp-queue/NAME`` on its request and never
  subscribes to anything: RabbitMQ creates a private queue for this connection, gives the
  service a ``/reply-queue/...`` name for it, and delivers the reply with the header
  ``subscription:/temp-queue/NAME`` — a subscription the client did not make. A message
  for a subscription the client does not know reaches the listeners' ``on_message`` only
  (there is no ``Subscription`` whose ``get()`` or callback could take it), so the caller
  receives replies with a ``stompws.Listener`` (``Replies`` below). ``WaitingListener``
  works too for a single reply.
* Other brokers (ActiveMQ, the embedded broker) need no such magic: the caller subscribes
  to a reply queue of its own and names it in ``reply-to``. The same ``Replies`` object
  takes those replies, as that subscription's callback.
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


class Replies(stompws.Listener):
    """Collects replies by ``correlation-id``; other messages are not its business."""

    def __init__(self) -> None:
        self._replies: dict[str, stompws.Frame] = {}
        self._arrived = threading.Condition()

    def on_message(self, frame: stompws.Frame) -> None:
        correlation = frame.headers.get("correlation-id")
        if correlation is None:
            return
        with self._arrived:
            self._replies[correlation] = frame
            self._arrived.notify_all()

    def wait_for(self, correlation: str) -> stompws.Frame:
        deadline = time.monotonic() + WAIT
        with self._arrived:
            while correlation not in self._replies:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no reply {correlation} within {WAIT:g} s")
                self._arrived.wait(remaining)
            return self._replies.pop(correlation)


def start_service(url: str, requests: str) -> stompws.Client:
    """Answers every request with its body in capitals."""
    service = stompws.Client(url, heartbeats=(0, 0))
    service.connect()

    def answer(request: stompws.Frame) -> None:
        reply_to = request.headers["reply-to"]
        print(f"service: {request.text!r}, answering on {reply_to}")
        service.send(
            reply_to,
            request.text.upper(),
            headers={"correlation-id": request.headers.get("correlation-id", "")},
        )

    service.subscribe(requests, callback=answer, receipt=True)
    return service


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    requests = f"/queue/requests-{uuid.uuid4().hex[:8]}"
    with broker_url(argv) as url:
        service = start_service(url, requests)
        caller = stompws.Client(url, heartbeats=(0, 0))
        replies = Replies()
        try:
            caller.connect()
            if (caller.server or "").startswith("RabbitMQ/"):
                reply_to = "/temp-queue/replies"
                caller.add_listener(replies)  # no subscription of ours will carry them
                print(f"caller: replies to {reply_to}, received by a listener")
            else:
                reply_to = f"/queue/replies-{uuid.uuid4().hex[:8]}"
                caller.subscribe(reply_to, callback=replies.on_message, receipt=True)
                print(f"caller: replies to {reply_to}, a queue it subscribed to")

            questions = {f"req-{n}": text for n, text in enumerate(["ping", "hello", "bye"])}
            for correlation, text in questions.items():
                caller.send(
                    requests, text, headers={"reply-to": reply_to, "correlation-id": correlation}
                )
            for correlation, text in questions.items():
                reply = replies.wait_for(correlation)
                print(
                    f"caller: {text!r} -> {reply.text!r} "
                    f"(correlation-id {correlation}, subscription "
                    f"{reply.headers.get('subscription')})"
                )
        finally:
            caller.disconnect()
            service.disconnect()
        print(f"{len(questions)} requests answered")
    return 0


if __name__ == "__main__":
    sys.exit(main())
