"""stompws in one minute: an embedded broker and a client, in one process.

Run it with ``make demo`` or ``python examples/quickstart.py``. It starts the embedded test
broker (``stompws.testing.Broker``, for tests and demos only: use RabbitMQ or ActiveMQ in
production), then with ``stompws.Client`` it connects over WebSocket, subscribes, sends and
receives, uses a transaction and a receipt, and disconnects cleanly, saying what happens.
"""

from __future__ import annotations

import sys

import stompws
from stompws.testing import Broker


def main() -> int:
    with Broker() as broker:
        print(f"embedded broker listening on {broker.ws_url} and {broker.tcp_url}")

        client = stompws.Client(broker.ws_url, login="guest", passcode="guest")
        connected = client.connect(timeout=5)
        print(
            f"connected: STOMP {client.version}, session {client.session}, "
            f"server {connected.headers.get('server')}"
        )

        orders = client.subscribe("/queue/orders", ack="client-individual")
        print(f"subscribed to {orders.destination} (id {orders.id}, ack client-individual)")

        client.send("/queue/orders", '{"order": 1, "item": "tea"}', content_type="application/json")
        message = orders.get(timeout=5)
        print(f"received {message.json()} (message-id {message.headers['message-id']})")
        message.ack()
        print("acknowledged it")

        receipt = client.send("/queue/orders", "with a receipt", receipt=True)
        assert receipt is not None
        confirmed = receipt.wait(timeout=5)
        print(f"the broker confirmed a SEND: RECEIPT {confirmed.headers['receipt-id']}")
        message = orders.get(timeout=5)
        message.ack()
        print(f"received and acknowledged {message.text!r}")

        tx = client.begin()
        tx.send("/queue/orders", "first, in a transaction")
        tx.send("/queue/orders", "second, in a transaction")
        print(f"sent two messages in transaction {tx.id}")
        try:
            orders.get(timeout=0.3)
        except stompws.ReceiveTimeout:
            print("nothing is delivered before COMMIT")
        tx.commit()
        for _ in range(2):
            message = orders.get(timeout=5)
            message.ack()
            print(f"after COMMIT, received and acknowledged {message.text!r}")

        client.disconnect(timeout=5)
        print("disconnected cleanly (DISCONNECT, RECEIPT, close)")
    print("broker stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
