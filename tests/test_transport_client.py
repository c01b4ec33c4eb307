"""The write bound seen from the public API: a broker that accepts CONNECT and then stops
reading cannot hold ``Client.send`` or ``Client.disconnect`` past ``write_timeout``, over
stomp://, stomp+ssl://, ws:// and wss://."""

from __future__ import annotations

import socket
import ssl
import threading
import time

import pytest

import stompws

from .security.certs import Certificates
from .test_transport_bounds import BIG, KINDS, MARGIN, Peer, certificates
from .test_transport_ws import read_client_frame
from .test_ws_framing import server_frame

__all__ = ["certificates"]  # the module fixture, shared with test_transport_bounds

CONNECTED = b"CONNECTED\nversion:1.2\nheart-beat:0,0\n\n\x00"


def _accept_connect_then_stop_reading(kind: str, stop: threading.Event) -> object:
    def serve(conn: socket.socket) -> None:
        if kind in ("ws", "wss"):
            read_client_frame(conn)
            conn.sendall(server_frame(0x1, CONNECTED))
        else:
            request = b""
            while b"\x00" not in request:
                chunk = conn.recv(4096)
                assert chunk, "the client closed before CONNECT"
                request += chunk
            conn.sendall(CONNECTED)
        stop.wait(30)  # reads nothing more until the test ends

    return serve


@pytest.mark.parametrize("kind", KINDS)
def test_send_and_disconnect_are_bounded_when_the_broker_stops_reading(
    certificates: Certificates, kind: str
) -> None:
    stop = threading.Event()
    peer = Peer(kind, certificates, serve=_accept_connect_then_stop_reading(kind, stop))
    path = "/ws" if kind in ("ws", "wss") else ""
    context = ssl.create_default_context(cafile=str(certificates.ca)) if peer.tls else None
    client = stompws.Client(
        f"{kind}://127.0.0.1:{peer.port}{path}",
        heartbeats=(0, 0),
        ssl_context=context,
        write_timeout=0.5,
        connect_timeout=10,
    )
    try:
        client.connect()
        started = time.monotonic()
        with pytest.raises(stompws.ConnectionClosed) as caught:
            client.send("/queue/stalled", BIG)
        elapsed = time.monotonic() - started
        assert isinstance(caught.value, stompws.WriteTimeout), caught.value
        assert "write_timeout=0.5" in str(caught.value)
        assert elapsed < 0.5 + MARGIN + 0.5, elapsed  # + encoding 16 MiB as a frame
        started = time.monotonic()
        client.disconnect(timeout=2)
        assert time.monotonic() - started < 2 + MARGIN
    finally:
        stop.set()
        client.disconnect()
        peer.close()
