"""An embedded STOMP broker for tests and demos: ``stompws.testing.Broker``.

A test and demo tool, not a production broker. It runs in your process, keeps everything in
memory, forgets everything when stopped, has no persistence, clustering, flow control or
security beyond a dict of logins and limits against hostile peers (browser Origins, a CONNECT
deadline, a connection cap, a bound on what waits for each client: see ``Broker``). For
production use RabbitMQ (STOMP and Web STOMP plugins) or ActiveMQ, and their clusters.

What it does::

    from stompws.testing import Broker

    with Broker() as broker:                  # 127.0.0.1, free ports
        client = stompws.Client(broker.ws_url)  # or broker.tcp_url (stomp://)
        ...

* STOMP 1.0, 1.1 and 1.2 over WebSocket (subprotocols v12.stomp, v11.stomp, v10.stomp) and
  over plain TCP; version and heart-beat negotiation; heart-beats sent at the agreed rate and
  silent clients closed.
* ``/queue/NAME``: each message to one subscriber, round robin; messages wait while nobody
  subscribes; unacknowledged ones are redelivered (``redelivered:true``) after NACK,
  UNSUBSCRIBE or the consumer's disconnect. ``/topic/NAME``: every subscriber gets a copy.
  Other destinations are refused.
* Ack modes auto, client (cumulative) and client-individual; ``prefetch-count`` on
  SUBSCRIBE limits unacknowledged messages per subscription.
* Transactions (SEND, ACK and NACK take effect at COMMIT), receipts for every frame
  (DISCONNECT too), ERROR and close for malformed or oversized frames, unknown commands,
  missing headers and bad credentials.
* Fault hooks for tests: ``stop_heartbeats``, ``go_silent``, ``drop_connections``,
  ``send_raw``, ``delay_frames``, ``refuse_connections`` (each documented on ``Broker``).

Where it differs from RabbitMQ, knowingly: a RECEIPT for a SEND inside a transaction comes
at once (RabbitMQ sends it at COMMIT); the ``host`` header is not checked; a redelivered
message keeps its message-id (as ActiveMQ does); after ERROR the connection is closed at
once (RabbitMQ waits seconds).

Fixtures for pytest: add ``pytest_plugins = ["stompws.testing.pytest_plugin"]`` to your
``conftest.py`` (see that module). From the command line: ``python -m stompws.testing``.
"""

from ._hub import ConnectionInfo
from .broker import Broker

__all__ = ["Broker", "ConnectionInfo"]
