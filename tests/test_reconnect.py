"""Reconnect: the backoff policy with plain numbers, and the supervisor against fake peers."""

from __future__ import annotations

import contextlib
import threading
import time

import pytest

import stompws
from stompws import (
    ClientState,
    ConnectionClosed,
    Frame,
    NotConnected,
    Reconnect,
    ReconnectFailed,
    UsageError,
    WaitingListener,
)

from .fakes import Peer, fake_broker
from .support.recording import Recorder


def test_backoff_grows_to_the_maximum_and_stops_after_attempts() -> None:
    policy = Reconnect(initial=0.1, maximum=0.5, multiplier=2, jitter=0, attempts=5)
    assert list(policy.delays()) == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5])


def test_jitter_spreads_each_wait() -> None:
    policy = Reconnect(initial=1.0, maximum=1.0, jitter=0.1, attempts=2)
    assert list(policy.delays(lambda: 0.0)) == pytest.approx([0.9, 0.9])
    assert list(policy.delays(lambda: 1.0)) == pytest.approx([1.1, 1.1])


def test_unlimited_by_default() -> None:
    delays = Reconnect().delays()
    assert len([next(delays) for _ in range(100)]) == 100


@pytest.mark.parametrize(
    "options",
    [
        {"initial": -1},
        {"initial": 5, "maximum": 1},
        {"multiplier": 0.5},
        {"jitter": 2},
        {"attempts": 0},
    ],
)
def test_bad_policies(options: dict[str, float]) -> None:
    with pytest.raises(UsageError):
        Reconnect(**options)  # type: ignore[arg-type]


def test_reconnect_must_be_a_policy() -> None:
    with pytest.raises(UsageError, match=r"stompws\.Reconnect"):
        stompws.Client("ws://127.0.0.1/ws", reconnect=True)  # type: ignore[arg-type]


class Sessions:
    """A fake broker whose n-th connection runs the n-th script; later ones run the last."""

    def __init__(self, *scripts: object) -> None:
        self.scripts = scripts
        self.count = 0
        self.lock = threading.Lock()
        self.subscribes: list[Frame] = []

    def __call__(self, peer: Peer) -> None:
        with self.lock:
            index = min(self.count, len(self.scripts) - 1)
            self.count += 1
        self.scripts[index](self, peer)  # type: ignore[operator]


def drop_after_subscribe(sessions: Sessions, peer: Peer) -> None:
    peer.accept_connect()
    frame = peer.frame()
    assert frame is not None and frame.command == "SUBSCRIBE"
    sessions.subscribes.append(frame)
    if "receipt" in frame.headers:
        peer.send_frame("RECEIPT", {"receipt-id": frame.headers["receipt"]})
    # then the connection is cut


def serve(sessions: Sessions, peer: Peer) -> None:
    peer.accept_connect()
    while True:
        frame = peer.frame()
        if frame is None:
            return
        if frame.command == "SUBSCRIBE":
            sessions.subscribes.append(frame)
        if "receipt" in frame.headers:
            peer.send_frame("RECEIPT", {"receipt-id": frame.headers["receipt"]})
        if frame.command == "SEND":
            peer.send_frame(
                "MESSAGE",
                {"subscription": sessions.subscribes[-1].headers["id"], "message-id": "1"},
                frame.body,
            )
        if frame.command == "DISCONNECT":
            return


def refuse(sessions: Sessions, peer: Peer) -> None:
    peer.frame()
    # The client may have given up on this attempt already (connect_timeout, disconnect()).
    with contextlib.suppress(OSError):
        peer.send_frame("ERROR", {"message": "not now"})


def fast(attempts: int | None = None) -> Reconnect:
    return Reconnect(initial=0.01, maximum=0.05, jitter=0, attempts=attempts)


def test_reconnects_and_subscribes_again_with_the_same_id() -> None:
    sessions = Sessions(drop_after_subscribe, serve)
    with fake_broker(sessions) as broker:
        recorder = Recorder()
        waiting = WaitingListener()
        client = stompws.Client(broker.url, heartbeats=(0, 0), reconnect=fast())
        client.add_listener(recorder)
        client.add_listener(waiting)
        client.connect()
        subscription = client.subscribe(
            "/queue/a", ack="client-individual", headers={"prefetch-count": "3"}, receipt=True
        )
        waiting.wait_for_disconnect(5)
        client.send("/queue/a", "after the cut")  # waits for the reconnect
        assert subscription.get(5).text == "after the cut"
        assert client.state is ClientState.CONNECTED
        client.disconnect()
    first, second = sessions.subscribes
    # Both ask for a receipt: the first because the caller did, the second so that a
    # refusal ends that subscription alone (tests/faults/test_ended_subscriptions.py).
    assert first.header_list[:-1] == second.header_list[:-1]
    assert second.header_list[-1][0] == "receipt"
    assert second.headers["id"] == subscription.id and second.headers["prefetch-count"] == "3"
    names = recorder.names()
    assert names.count("connecting") == 2
    assert names.count("connected") == 2
    assert names.count("disconnected") == 2
    first_loss = names.index("disconnected")
    assert names.index("connecting", first_loss) > first_loss  # loss reported before retrying


def test_send_while_reconnecting_waits_then_raises() -> None:
    sessions = Sessions(drop_after_subscribe, refuse)
    with fake_broker(sessions) as broker:
        client = stompws.Client(
            broker.url, heartbeats=(0, 0), reconnect=fast(), connect_timeout=0.5
        )
        waiting = WaitingListener()
        client.add_listener(waiting)
        client.connect()
        client.subscribe("/q", receipt=True)
        waiting.wait_for_disconnect(5)
        started = time.monotonic()
        with pytest.raises(NotConnected, match="still reconnecting"):
            client.send("/q", "x")
        assert 0.4 < time.monotonic() - started < 3.0
        assert client.state is ClientState.RECONNECTING
        started = time.monotonic()
        client.disconnect(timeout=2)
        assert time.monotonic() - started < 2.5
        assert client.state is ClientState.CLOSED


def test_gives_up_after_the_attempts() -> None:
    sessions = Sessions(drop_after_subscribe, refuse)
    with fake_broker(sessions) as broker:
        waiting = WaitingListener()
        client = stompws.Client(broker.url, heartbeats=(0, 0), reconnect=fast(attempts=3))
        client.add_listener(waiting)
        client.connect()
        subscription = client.subscribe("/q", receipt=True)
        with pytest.raises(ReconnectFailed, match="gave up reconnecting after 3 attempts"):
            subscription.get(10)
        with pytest.raises(ReconnectFailed):
            next(iter(subscription))  # a failure: iteration does not just end
        assert client.state is ClientState.DISCONNECTED
        # The loss, three refused attempts, and the end of reconnecting.
        assert len(waiting.disconnects) == 5
        assert isinstance(waiting.disconnects[-1], ReconnectFailed)
        client.disconnect()


def test_disconnect_during_backoff_returns_promptly() -> None:
    sessions = Sessions(drop_after_subscribe, refuse)
    with fake_broker(sessions) as broker:
        waiting = WaitingListener()
        client = stompws.Client(
            broker.url,
            heartbeats=(0, 0),
            reconnect=Reconnect(initial=30, maximum=30, jitter=0),
        )
        client.add_listener(waiting)
        client.connect()
        client.subscribe("/q", receipt=True)
        waiting.wait_for_disconnect(5)
        started = time.monotonic()
        client.disconnect()
        assert time.monotonic() - started < 1.0


def test_pending_receipts_and_transactions_fail_at_the_loss() -> None:
    def swallow_then_cut(sessions: Sessions, peer: Peer) -> None:
        peer.accept_connect()
        peer.frame()  # BEGIN
        peer.frame()  # SEND with a receipt, never answered

    sessions = Sessions(swallow_then_cut, serve)
    back = threading.Semaphore(0)

    class Connections(stompws.Listener):
        def on_connected(self, frame: Frame) -> None:
            back.release()

    with fake_broker(sessions) as broker:
        client = stompws.Client(broker.url, heartbeats=(0, 0), reconnect=fast())
        client.add_listener(Connections())
        client.connect()
        tx = client.begin()
        receipt = tx.send("/q", "x", receipt=True)
        assert receipt is not None
        with pytest.raises(ConnectionClosed):
            receipt.wait(5)
        with pytest.raises(ConnectionClosed, match="aborted"):
            tx.commit()
        # Only once the reconnect is through: a disconnect() while it is under way may
        # rightly abort it before its CONNECT, which the second session (``serve``) asserts.
        assert back.acquire(timeout=5) and back.acquire(timeout=5)
        client.disconnect()
