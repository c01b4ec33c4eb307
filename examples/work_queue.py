"""Competing consumers on a queue, with client-individual acks: no task is lost.

Run it with ``python examples/work_queue.py`` (it starts the embedded test broker) or
against your broker, credentials in the URL::

    python examples/work_queue.py ws://guest:guest@127.0.0.1:15674/ws
    python examples/work_queue.py stomp://guest:guest@127.0.0.1:61613

A queue gives each message to one of its subscribers. Each worker subscribes with
``ack="client-individual"`` and acknowledges a task only once it is done, and asks for at
most one unacknowledged task at a time (``prefetch-count`` for RabbitMQ and the embedded
broker, ``activemq.prefetchSize`` for ActiveMQ), so that the tasks are shared out.

Carol takes the first task and quits without acknowledging it, as a worker that crashes
would: the broker gives that task to another worker, marked ``redelivered:true``. (A NACK
would not show this everywhere: ActiveMQ moves a NACKed message to its dead letter queue.)
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
TASKS = 6
ONE_AT_A_TIME = {"prefetch-count": "1", "activemq.prefetchSize": "1"}


@contextlib.contextmanager
def broker_url(argv: list[str]) -> Iterator[str]:
    """The URL given on the command line, or the embedded broker's while it runs."""
    if argv:
        yield argv[0]
        return
    with Broker() as broker:
        print(f"no URL given: started the embedded test broker on {broker.ws_url}")
        yield broker.ws_url


class Board:
    """Which tasks are done, and by whom; filled in by the workers' reader threads."""

    def __init__(self) -> None:
        self.done: dict[str, str] = {}
        self.changed = threading.Condition()

    def finish(self, task: str, worker: str) -> None:
        with self.changed:
            self.done[task] = worker
            self.changed.notify_all()

    def wait_for(self, count: int) -> dict[str, str]:
        deadline = time.monotonic() + WAIT
        with self.changed:
            while len(self.done) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"only {sorted(self.done)} done within {WAIT:g} s")
                self.changed.wait(remaining)
            return dict(self.done)


def worker(name: str, url: str, queue: str, board: Board) -> stompws.Client:
    client = stompws.Client(url, heartbeats=(0, 0))
    client.connect()

    def work(frame: stompws.Frame) -> None:
        again = " (redelivered)" if frame.headers.get("redelivered") == "true" else ""
        print(f"{name} does {frame.text}{again}")
        frame.ack()  # only now: a worker that dies before this line loses nothing
        board.finish(frame.text, name)

    client.subscribe(
        queue, ack="client-individual", headers=ONE_AT_A_TIME, callback=work, receipt=True
    )
    return client


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    queue = f"/queue/tasks-{uuid.uuid4().hex[:8]}"
    board = Board()
    with broker_url(argv) as url:
        clients: list[stompws.Client] = []
        try:
            carol = stompws.Client(url, heartbeats=(0, 0))
            clients.append(carol)
            carol.connect()
            taken = carol.subscribe(
                queue, ack="client-individual", headers=ONE_AT_A_TIME, receipt=True
            )

            producer = stompws.Client(url, heartbeats=(0, 0))
            clients.append(producer)
            producer.connect()
            producer.send(queue, "task-1")
            first = taken.get(timeout=WAIT)
            print(f"carol takes {first.text} and crashes before acknowledging it")

            for name in ("alice", "bob"):
                clients.append(worker(name, url, queue, board))
            for n in range(2, TASKS + 1):
                producer.send(queue, f"task-{n}")
            print(f"queued task-2 to task-{TASKS} for alice and bob")
            carol.disconnect()  # the broker gives her unacknowledged task to someone else

            done = board.wait_for(TASKS)
            for name in ("alice", "bob"):
                tasks = sorted(task for task, by in done.items() if by == name)
                print(f"{name} did {len(tasks)}: {', '.join(tasks)}")
            print(f"all {TASKS} tasks done, {first.text} too")
        finally:
            for client in clients:
                client.disconnect()
    return 0


if __name__ == "__main__":
    sys.exit(main())
