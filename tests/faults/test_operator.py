"""What a RabbitMQ operator does to a running client: kick its connection, delete the queue
it reads.

What RabbitMQ 3.10.8 sends, read off its STOMP plugins and seen here:
- **A kick**: ``rabbitmqctl close_connection`` knows only AMQP 0-9-1 connections (for a
  STOMP one it logs "no running cluster node reported it as an active connection"), so an
  operator calls the plugins' own close functions (the ones maintenance mode's drain calls
  for every client) with ``rabbitmqctl eval``, as ``_kick`` does. RabbitMQ then closes the
  socket with no word: no ERROR over TCP, no WebSocket close frame (the reason goes to its
  log only). The client reports a ``ConnectionClosed`` that says so and, with ``Reconnect``,
  is back with its subscriptions.
- **A deleted queue**: an ERROR ``Server cancelled subscription`` with a ``subscription``
  header; the connection stays open. The client ends that subscription with the error.
- **A resubscription to a queue deleted while the client was away**: an ERROR
  (``not_found``) answering the SUBSCRIBE's receipt; the client ends that subscription and
  keeps the connection and the other subscriptions.
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

import stompws
from stompws import BrokerError, ConnectionClosed, Reconnect

from ..support.recording import Recorder
from .conftest import ClientFactory, ProxyFactory
from .support import WAIT, Broker, new_queue

pytestmark = pytest.mark.brokers

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "brokers" / "rabbitmq.sh"
CTL_TIMEOUT = 60.0  # the CLI starts a VM of its own: seconds on a loaded machine
RABBITMQ = ["rabbitmq-tcp", "rabbitmq-ws"]
RECONNECT = Reconnect(initial=0.05, maximum=0.5)

# The connection whose client port is Port, found among the plugin's connections and closed
# by the plugin's own function: the Web STOMP process owns (is linked to) its socket.
_KICK_TCP = (
    "Port = {port}, "
    "Mine = [P || P <- rabbit_stomp:list(), "
    "[{{peer_port, Port}}] =:= rabbit_stomp_reader:info(P, [peer_port])], "
    '[rabbit_stomp_reader:close_connection(P, "{reason}") || P <- Mine], length(Mine).'
)
_KICK_WS = (
    "Port = {port}, "
    "Owns = fun(P) -> {{links, L}} = erlang:process_info(P, links), "
    "lists:any(fun(S) -> is_port(S) andalso "
    "inet:peername(S) =:= {{ok, {{{{127,0,0,1}}, Port}}}} end, L) end, "
    "Mine = [P || P <- rabbit_web_stomp_listener:list_connections(), Owns(P)], "
    '[rabbit_web_stomp_handler:close_connection(P, "{reason}") || P <- Mine], length(Mine).'
)


def _ctl(*args: str) -> str:
    done = subprocess.run(
        [str(SCRIPT), "ctl", *args],
        capture_output=True,
        text=True,
        timeout=CTL_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, f"rabbitmqctl {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout.strip()


def _kick(broker: Broker, client_port: int, reason: str) -> None:
    """Close the connection from ``client_port`` as an operator would."""
    template = _KICK_WS if broker.websocket else _KICK_TCP
    closed = _ctl("eval", template.format(port=client_port, reason=reason))
    assert closed.splitlines()[-1] == "1", f"no connection from port {client_port}: {closed}"


def _client_port() -> int:
    """A port for the client to connect from, so that the operator can find its connection
    (the broker lists each by its peer's port)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _declare(client: stompws.Client, queue: str) -> None:
    """RabbitMQ declares a durable queue on a first SUBSCRIBE to /queue/NAME; consumers
    below read it as /amq/queue/NAME, which only reads an existing queue."""
    client.subscribe(f"/queue/{queue}", receipt=True).unsubscribe(receipt=True)


def _confirmed(client: stompws.Client, destination: str, body: str) -> None:
    receipt = client.send(destination, body, receipt=True)
    assert receipt is not None
    receipt.wait(WAIT)


@pytest.mark.parametrize("broker", RABBITMQ, indirect=True)
def test_a_deleted_queue_ends_its_subscription_and_the_connection_stays(
    broker: Broker, make_client: ClientFactory
) -> None:
    name = new_queue("operator-delete").removeprefix("/queue/")
    recorder = Recorder()
    client = make_client(broker.url, heartbeats=(0, 0))
    client.add_listener(recorder)
    client.connect()
    _declare(client, name)
    other = client.subscribe(f"/queue/{name}-other", receipt=True)
    doomed = client.subscribe(f"/amq/queue/{name}", ack="client-individual", receipt=True)
    _confirmed(client, f"/amq/queue/{name}", "before")
    first = doomed.get(WAIT)
    assert first.text == "before"
    first.ack()

    _ctl("delete_queue", name)

    with pytest.raises(BrokerError, match="cancelled subscription") as ended:
        doomed.get(WAIT)
    assert ended.value.frame.headers["subscription"] == doomed.id
    [error] = recorder.wait_for("error")
    assert error.headers["subscription"] == doomed.id
    assert client.subscriptions == [other]
    assert client.is_connected and recorder.of("disconnected") == []
    _confirmed(client, f"/queue/{name}-other", "after")
    assert other.get(WAIT).text == "after"


@pytest.mark.parametrize("broker", RABBITMQ, indirect=True)
def test_a_kicked_client_reports_the_close_and_comes_back(
    broker: Broker, make_client: ClientFactory
) -> None:
    queue = new_queue("operator-kick")
    client_port = _client_port()
    recorder = Recorder()
    client = make_client(
        broker.url,
        heartbeats=(0, 0),
        reconnect=RECONNECT,
        source_address=("127.0.0.1", client_port),
    )
    client.add_listener(recorder)
    client.connect()
    subscription = client.subscribe(queue, receipt=True)
    _confirmed(client, queue, "before")
    assert subscription.get(WAIT).text == "before"

    _kick(broker, client_port, "kicked by the operator")

    [reason] = recorder.wait_for("disconnected")
    assert isinstance(reason, ConnectionClosed)
    # RabbitMQ 3.10 sends no reason: the client says how the connection ended.
    assert "closed" in str(reason), reason
    recorder.wait_for("connected", 2)
    _confirmed(client, queue, "after")
    assert subscription.get(WAIT).text == "after"
    assert client.subscriptions == [subscription]
    print(f"\nkicked ({broker.name}): {reason}")


@pytest.mark.parametrize("broker", RABBITMQ, indirect=True)
def test_a_resubscription_to_a_queue_deleted_meanwhile_is_refused_alone(
    broker: Broker, make_client: ClientFactory, proxy_for: ProxyFactory
) -> None:
    name = new_queue("operator-resubscribe").removeprefix("/queue/")
    kept_queue = f"/queue/{name}-kept"
    proxy = proxy_for(broker)
    recorder = Recorder()
    client = make_client(proxy.url_for(broker.url), heartbeats=(0, 0), reconnect=RECONNECT)
    client.add_listener(recorder)
    client.connect()
    _declare(client, name)
    doomed = client.subscribe(f"/amq/queue/{name}", receipt=True)
    kept = client.subscribe(kept_queue, receipt=True)

    # The client is away (refused at the proxy) while the queue is deleted: its reconnect
    # then asks for a subscription to a queue that no longer exists.
    proxy.refuse()
    proxy.cut()
    recorder.wait_for("disconnected")
    _ctl("delete_queue", name)
    proxy.accept()

    # Over TCP RabbitMQ says not_found (then closes); over WebSocket it closes at once with
    # no word ("STOMP died"), and the client recognises the refusal at the second such close.
    expected = (ConnectionClosed, "refuses") if broker.websocket else (BrokerError, "not_found")
    with pytest.raises(expected[0], match=expected[1]) as refused:
        doomed.get(WAIT)
    print(f"\nresubscription refused ({broker.name}): {refused.value}")
    assert client.subscriptions == [kept]
    _confirmed(client, kept_queue, "after")
    assert kept.get(WAIT).text == "after"
    assert client.is_connected
    # Then one more connection per refusal (the close that comes with it), and no more: the
    # refused subscription is not asked for again.
    refusals = 2 if broker.websocket else 1
    assert len(recorder.of("connected")) == 2 + refusals, recorder.names()
