"""The real brokers as the tests see them: ports, URLs, a reachability probe, fresh queues.

The ports come from scripts/brokers/ports.env, the file the broker scripts source, so that
the brokers and the tests cannot disagree on where to meet. Every address is 127.0.0.1.
"""

from __future__ import annotations

import os
import re
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


# -- what the brokers logged during a failed test ----------------------------------------------
# A failure against a real broker in CI is often explained only by the broker's side (flow
# control, an inactivity monitor, a refused frame); CI keeps no broker state, so the lines the
# brokers logged while the test ran go into its report.

STATE_DIR = Path(
    os.environ.get("STOMPWS_BROKER_DIR") or Path(__file__).resolve().parents[2] / ".brokers"
)
BROKER_LOGS = {
    "ActiveMQ": STATE_DIR / "activemq" / "data" / "activemq.log",
    "RabbitMQ": STATE_DIR / "rabbitmq" / "log" / "stompws@localhost.log",
}
# Warnings and errors, and what both brokers log at INFO when they throttle producers.
_NOTABLE = re.compile(r"\| (WARN|ERROR) |\[(warning|error)\]|Usage Manager|flow.control|alarm")
LOG_LINES_REPORTED = 40


def broker_log_sizes() -> dict[str, int]:
    """Where each broker log ends now (absent logs: 0)."""
    sizes = {}
    for name, path in BROKER_LOGS.items():
        try:
            sizes[name] = path.stat().st_size
        except OSError:
            sizes[name] = 0
    return sizes


def broker_log_news(since: dict[str, int]) -> str:
    """The warnings and errors each broker logged after ``since`` (its last lines, when
    many), or "" when none did."""
    parts = []
    for name, path in BROKER_LOGS.items():
        try:
            with path.open("rb") as log:
                log.seek(since.get(name, 0))
                text = log.read().decode("utf-8", "replace")
        except OSError:
            continue
        notable = [line for line in text.splitlines() if _NOTABLE.search(line)]
        if notable:
            shown = notable[-LOG_LINES_REPORTED:]
            many = len(shown) < len(notable)
            count = f", the last {len(shown)} of {len(notable)}" if many else ""
            header = f"{name} ({path}){count}:"
            parts.append("\n".join([header, *shown]))
    return "\n\n".join(parts)
