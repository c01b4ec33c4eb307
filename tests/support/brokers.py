"""The real brokers as the tests see them: ports, URLs, a reachability probe, fresh queues.

The ports come from scripts/brokers/ports.env, the file the broker scripts source, so that
the brokers and the tests cannot disagree on where to meet. Every address is 127.0.0.1.
"""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

HOST = "127.0.0.1"
PORTS_FILE = Path(__file__).resolve().parents[2] / "scripts" / "brokers" / "ports.env"
PROBE_TIMEOUT = 2.0


def _read_ports(path: Path) -> dict[str, int]:
    ports: dict[str, int] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            ports[name.strip()] = int(value.strip())
    return ports


PORTS = _read_ports(PORTS_FILE)
RABBITMQ_STOMP_PORT = PORTS["RABBITMQ_STOMP_PORT"]
RABBITMQ_WS_PORT = PORTS["RABBITMQ_WS_PORT"]
RABBITMQ_WSS_PORT = PORTS["RABBITMQ_WSS_PORT"]
ACTIVEMQ_STOMP_PORT = PORTS["ACTIVEMQ_STOMP_PORT"]

RABBITMQ_TCP_URL = f"stomp://{HOST}:{RABBITMQ_STOMP_PORT}"
RABBITMQ_WS_URL = f"ws://{HOST}:{RABBITMQ_WS_PORT}/ws"
RABBITMQ_WSS_URL = f"wss://{HOST}:{RABBITMQ_WSS_PORT}/ws"
ACTIVEMQ_TCP_URL = f"stomp://{HOST}:{ACTIVEMQ_STOMP_PORT}"


def probe(name: str, host: str, port: int, timeout: float = PROBE_TIMEOUT) -> str | None:
    """None when ``host:port`` accepts a TCP connection, else why not (for ``need``)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as error:
        return (
            f"{name} is not reachable at {host}:{port} ({error}); "
            "start the brokers with scripts/brokers/up.sh"
        )


def new_queue(tag: str = "it") -> str:
    """A queue name never used before: /queue/ queues outlive a test on both real brokers
    (durable on RabbitMQ, persistent on ActiveMQ), so a name must not be reused."""
    return f"/queue/stompws-{tag}-{uuid.uuid4().hex}"
