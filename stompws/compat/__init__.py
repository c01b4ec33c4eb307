"""stomp.py 9's classes on top of stompws: ``import stompws.compat as stomp``.

The connection classes (``Connection`` = ``Connection11``, ``Connection10``,
``Connection12``, ``WSConnection`` = ``WSStompConnection``), the listeners
(``ConnectionListener``, ``PrintingListener``, ``StatsListener``, ``WaitingListener``,
``TestListener``) and the exceptions take the same arguments and make the same callbacks as
stomp.py's, and each connection drives one ``stompws.Client``. Constructor arguments map as
follows: ``host_and_ports`` become stomp:// (or ws:// with ``ws_path``) URLs tried in order
(an entry may also be a URL string, with query options); ``heartbeats``; ``vhost`` becomes
the ``host`` header; ``reconnect_*`` become a ``stompws.Reconnect`` used by ``connect()``
(and, with ``auto_reconnect=True``, after a lost connection too, subscribing again);
``auto_content_length``; ``header`` becomes the WebSocket handshake's HTTP headers;
``set_ssl`` becomes an ``ssl.SSLContext``.

Deliberate differences from stomp.py, each a known problem there:

* Every wait is bounded: ``connect()`` returns connected or raises (also with
  ``wait=False``), ``disconnect()`` waits for its RECEIPT at most ``disconnect_timeout``
  seconds, and the listeners' ``wait_*`` methods take a timeout (60 s unless given).
* A listener that raises is logged with its traceback; the other listeners still run and
  the connection stays up (stomp.py's receiver loop ends and the connection drops).
* ``on_disconnecting()`` is called before the DISCONNECT frame goes out (stomp.py 9 never
  calls it).
* ``host`` is sent only when ``vhost`` is given (stomp.py's 1.2 classes send the host name,
  which RabbitMQ refuses unless it is a virtual host).
* Heart-beats are judged by stompws: ``heart_beat_receive_scale`` is its tolerance, but
  never below 2.0 (ActiveMQ's heart-beat comes two intervals after its last frame), and a
  slow listener does not cause a false heart-beat timeout.

Nothing here imports stomp.py.
"""

from .connection import BaseConnection
from .exception import (
    ConnectFailedException,
    ConnectionClosedException,
    InterruptedException,
    NotConnectedException,
    StompException,
)
from .frame import Frame
from .listener import (
    ConnectionListener,
    PrintingListener,
    StatsListener,
    TestListener,
    WaitingListener,
)
from .versions import Connection, Connection10, Connection11, Connection12, WSConnection

StompConnection10 = Connection10
StompConnection11 = Connection11
StompConnection12 = Connection12
WSStompConnection = WSConnection

__all__ = [
    "BaseConnection",
    "ConnectFailedException",
    "Connection",
    "Connection10",
    "Connection11",
    "Connection12",
    "ConnectionClosedException",
    "ConnectionListener",
    "Frame",
    "InterruptedException",
    "NotConnectedException",
    "PrintingListener",
    "StatsListener",
    "StompConnection10",
    "StompConnection11",
    "StompConnection12",
    "StompException",
    "TestListener",
    "WSConnection",
    "WSStompConnection",
    "WaitingListener",
]
