"""The three-node RabbitMQ cluster of scripts/brokers/cluster.sh as the tests see it.

Its ports come from scripts/brokers/ports.env (the CLUSTER_* keys), like every other broker's,
and every operation on it (start, kill, revive, rabbitmqctl) goes through the script, so that
the tests find the nodes exactly as a developer does.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ..support import brokers as real

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "brokers" / "cluster.sh"
NODES = ("a", "b", "c")
START_TIMEOUT = 240.0  # a fresh cluster takes about 30 s here; a loaded CI machine more
COMMAND_TIMEOUT = 120.0  # kill, revive (about 11 s), status, rabbitmqctl
# `x-queue-type` is one of the headers RabbitMQ's STOMP plugin turns into a queue argument
# when it declares the queue of a /queue/ destination (on SUBSCRIBE and on SEND alike); a
# quorum queue must be durable and not auto-deleted, which /queue/ queues are by default and
# which the headers state anyway. Every frame that may declare the queue carries them all:
# whichever comes first declares it, and a SEND that declared a classic queue first would
# leave the consumer on an unreplicated queue.
QUORUM = {"x-queue-type": "quorum", "durable": "true", "auto-delete": "false"}
_KILLED_AT = re.compile(r"killed node [abc] \(beam pid \d+\) at (\d+(?:\.\d+)?)")


@dataclass(frozen=True)
class Node:
    name: str  # "a", "b" or "c"
    stomp_port: int
    ws_port: int

    def url(self, transport: str) -> str:
        if transport == "ws":
            return f"ws://{real.HOST}:{self.ws_port}/ws"
        return f"stomp://{real.HOST}:{self.stomp_port}"


CLUSTER_NODES = {
    name: Node(
        name,
        real.PORTS[f"CLUSTER_{name.upper()}_STOMP_PORT"],
        real.PORTS[f"CLUSTER_{name.upper()}_WS_PORT"],
    )
    for name in NODES
}


def urls(transport: str, order: str) -> list[str]:
    """The fail-over URL list visiting the nodes in ``order`` (e.g. "abc")."""
    return [CLUSTER_NODES[name].url(transport) for name in order]


def node_of(url: str) -> str:
    """Which node a URL of ``urls`` points at."""
    for node in CLUSTER_NODES.values():
        if url in (node.url("ws"), node.url("tcp")):
            return node.name
    raise ValueError(f"not a cluster URL: {url}")


class ScriptError(AssertionError):
    """cluster.sh failed; the message has its output."""


def run(*args: str, timeout: float = COMMAND_TIMEOUT) -> str:
    """Run cluster.sh with ``args``; its output, or ScriptError when it failed."""
    done = subprocess.run(
        [str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = done.stdout + done.stderr
    if done.returncode != 0:
        raise ScriptError(f"cluster.sh {' '.join(args)} exited {done.returncode}:\n{output}")
    return output


def is_running() -> bool:
    """True when all three nodes answer and see each other (cluster.sh status)."""
    try:
        run("status")
    except ScriptError:
        return False
    return True


def kill(node: str) -> float:
    """SIGKILL ``node``; returns the moment of the kill on the ``time.monotonic()`` clock
    (the script prints it as Unix time), so that a fail-over is timed from the kill itself
    and not from the script's start-up."""
    output = run("kill", node)
    found = _KILLED_AT.search(output)
    if found is None:
        raise ScriptError(f"cluster.sh kill {node} did not say when it killed:\n{output}")
    return float(found.group(1)) - (time.time() - time.monotonic())


def revive(node: str) -> None:
    run("revive", node)


def queue_members(queue: str) -> tuple[str, list[str]]:
    """(type, member nodes) of the RabbitMQ queue named ``queue`` (without /queue/)."""
    output = run("ctl", "a", "list_queues", "name", "type", "members", "--formatter", "json")
    # rabbitmqctl prints a line of its own before the JSON.
    rows = json.loads(output[output.index("[") :])
    for row in rows:
        if row["name"] == queue:
            return row["type"], sorted(row["members"])
    raise AssertionError(f"no queue {queue!r} in the cluster: {output}")


def delete_queue(queue: str) -> None:
    run("ctl", "a", "delete_queue", queue)
