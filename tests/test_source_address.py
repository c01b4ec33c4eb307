"""``Client(source_address=...)``: the local address a connection is made from."""

from __future__ import annotations

import socket
import threading

import pytest

import stompws

from .support.peer import ScriptedPeer, TransportName


def _unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.mark.parametrize("transport", ["tcp", "tls", "ws", "wss"])
def test_connections_come_from_the_source_address(transport: TransportName) -> None:
    with ScriptedPeer(transport) as peer:
        # A port found free may be taken before the client binds it: try a few.
        for _ in range(5):
            port = _unused_port()
            client = stompws.Client(
                peer.url,
                heartbeats=(0, 0),
                ssl_context=peer.ssl_context_for_client(),
                source_address=("127.0.0.1", port),
                connect_timeout=5.0,
            )
            failures: list[BaseException] = []

            def connect(
                client: stompws.Client = client, failures: list[BaseException] = failures
            ) -> None:
                try:
                    client.connect()
                except stompws.StompError as error:
                    failures.append(error)

            connecting = threading.Thread(target=connect, name="test-connect")
            connecting.start()
            try:
                conn = peer.accept(timeout=5.0)
            except AssertionError:
                connecting.join(5.0)
                assert failures and "in use" in str(failures[0]), failures
                continue
            conn.answer_connect()
            connecting.join(5.0)
            try:
                assert not failures, failures
                assert conn.client_address == ("127.0.0.1", port)
            finally:
                client.disconnect(timeout=2.0)
            return
        pytest.fail("five free ports were all taken before the client could bind one")


def test_a_source_address_that_cannot_be_bound_is_a_connect_error() -> None:
    with socket.socket() as taken, ScriptedPeer("tcp") as peer:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        client = stompws.Client(
            peer.url, source_address=taken.getsockname(), connect_timeout=2.0, heartbeats=(0, 0)
        )
        with pytest.raises(stompws.ConnectError, match="in use"):
            client.connect()
        client.disconnect(timeout=1.0)
