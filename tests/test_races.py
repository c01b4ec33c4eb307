"""Behaviours of a concurrency-heavy client that no test covered (issue #18, section 4).

Listener removal during dispatch, heart-beats over TLS, acking after a reconnect, fail-over
across URLs, send() racing connect() and unsubscribe() racing a delivery; all against the
scripted peer (tests/support/peer.py), whose received bytes are the evidence. Absence is
proven with a sentinel that must arrive after what must not happen.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import stompws
from stompws import HEARTBEAT, Frame

from .support.peer import PeerConnection, TransportName
from .support.recording import Recorder
from .test_core_defects import Harness, ends_clean
from .waiting import wait_until


@pytest.fixture
def harness() -> Iterator[Harness]:
    h = Harness()
    try:
        yield h
    finally:
        h.close()


class Events(Recorder):
    """A Recorder whose ``names()`` keep the heart-beats: these tests count them."""

    def names(self) -> list[str]:
        with self.condition:
            return [event.name for event in self.events]


def _subscribed(conn: PeerConnection, destination: str) -> str:
    """The id of the SUBSCRIBE to ``destination`` the peer receives next."""
    frame = conn.skip_to("SUBSCRIBE", destination=destination)
    return frame.headers["id"]


# -- 1. remove_listener ----------------------------------------------------------------------


class Named(stompws.Listener):
    """Writes its name into a shared log on each message; ``action`` runs first."""

    def __init__(self, name: str, log: list[tuple[str, str]], heard: threading.Condition) -> None:
        self.name = name
        self.log = log
        self.heard = heard
        self.action: Any = None

    def on_message(self, frame: Frame) -> None:
        if self.action is not None:
            action, self.action = self.action, None
            action()
        with self.heard:
            self.log.append((self.name, frame.body.decode()))
            self.heard.notify_all()


class Three:
    """A client with listeners a, b, c and a last one, the sentinel, all logging to one list."""

    def __init__(self, harness: Harness) -> None:
        peer = harness.peer("tcp")
        self.client = harness.client(peer)
        self.log: list[tuple[str, str]] = []
        self.heard = threading.Condition()
        self.a, self.b, self.c = (Named(name, self.log, self.heard) for name in ("a", "b", "c"))
        for listener in (self.a, self.b, self.c, Named("sentinel", self.log, self.heard)):
            self.client.add_listener(listener)
        self.conn = harness.connect(peer, self.client)

    def heard_for(self, bodies: list[str]) -> list[tuple[str, str]]:
        """What was heard for messages with these bodies; the sentinel listener is last, so
        its entry for the last body closes the window."""
        for body in bodies:
            self.conn.message("/queue/q", "nobody", body)
        last = ("sentinel", bodies[-1])
        wait_until(self.heard, lambda: True if last in self.log else None, f"{last}", 2.0)
        with self.heard:
            return list(self.log)


def test_remove_listener_stops_its_calls(harness: Harness) -> None:
    t = Three(harness)
    t.client.remove_listener(t.b)
    t.client.remove_listener(stompws.Listener())  # one never added: nothing happens
    assert t.heard_for(["1"]) == [("a", "1"), ("c", "1"), ("sentinel", "1")]


def test_listener_removing_itself_finishes_the_current_event_only(harness: Harness) -> None:
    t = Three(harness)
    t.b.action = lambda: t.client.remove_listener(t.b)
    # The current event goes on to b itself (it is running) and to the listeners after it;
    # b hears nothing after its removal returned.
    assert t.heard_for(["1", "2"]) == [
        ("a", "1"),
        ("b", "1"),
        ("c", "1"),
        ("sentinel", "1"),
        ("a", "2"),
        ("c", "2"),
        ("sentinel", "2"),
    ]


def test_listener_removing_a_later_listener_stops_it_at_once(harness: Harness) -> None:
    # Red before the fix: dispatch iterated a snapshot taken before the removal, so c still
    # heard event 1 after remove_listener(c) had returned.
    t = Three(harness)
    t.a.action = lambda: t.client.remove_listener(t.c)
    assert t.heard_for(["1", "2"]) == [
        ("a", "1"),
        ("b", "1"),
        ("sentinel", "1"),
        ("a", "2"),
        ("b", "2"),
        ("sentinel", "2"),
    ]


def test_listener_removing_an_earlier_listener_changes_the_next_events(harness: Harness) -> None:
    t = Three(harness)
    t.c.action = lambda: t.client.remove_listener(t.a)
    # a already heard event 1 before its removal: nothing is taken back, nothing skipped.
    assert t.heard_for(["1", "2"]) == [
        ("a", "1"),
        ("b", "1"),
        ("c", "1"),
        ("sentinel", "1"),
        ("b", "2"),
        ("c", "2"),
        ("sentinel", "2"),
    ]


def test_listener_removed_during_dispatch_raises_nothing(harness: Harness) -> None:
    t = Three(harness)
    errors: list[tuple[BaseException, str]] = []

    class Errors(stompws.Listener):
        def on_listener_error(self, exc: BaseException, event: str) -> None:
            errors.append((exc, event))

    t.client.add_listener(Errors())
    # Removing all of them, twice, from the middle of a dispatch.
    t.b.action = lambda: [t.client.remove_listener(x) for x in (t.a, t.b, t.c) * 2]
    got = t.heard_for(["1", "2"])
    assert got == [("a", "1"), ("b", "1"), ("sentinel", "1"), ("sentinel", "2")]
    assert errors == []


# -- 2. heart-beats over TLS -------------------------------------------------------------------

TLS_TRANSPORTS = ["tls", "wss"]


class Beating:
    """The peer's heart-beats every ``interval`` on a peer thread until ``stop()``."""

    def __init__(self, conn: PeerConnection, interval: float) -> None:
        self._conn = conn
        self._interval = interval
        self._stop = threading.Event()
        self.failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="peer-beating", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        # A pacing clock, not a synchronisation: the peer's schedule is what is under test.
        try:
            while not self._stop.wait(self._interval):
                self._conn.heartbeat()
        except OSError as error:
            self.failure = error

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)
        assert not self._thread.is_alive()


@pytest.mark.parametrize("transport", TLS_TRANSPORTS)
@ends_clean
def test_tls_heartbeats_on_time_keep_the_client_alive(
    harness: Harness, transport: TransportName
) -> None:
    peer = harness.peer(transport)
    # Dead after 2 × 500 ms (+ a quarter) of silence; the peer beats every 100 ms: a margin
    # of 10 intervals for a loaded machine.
    client = harness.client(peer, heartbeats=(0, 500))
    events = Events()
    client.add_listener(events)
    conn = harness.connect(peer, client, heartbeat="500,0")
    beating = Beating(conn, 0.1)
    try:
        # The window: 25 heart-beats heard, about 2.5 s, more than twice the timeout.
        events.wait_for("heartbeat", 25, timeout=15.0)
    finally:
        beating.stop()
    assert beating.failure is None
    conn.receipt("sentinel")
    events.wait_for("receipt")
    names = events.names()
    assert "heartbeat_timeout" not in names, names
    assert "disconnected" not in names, names
    assert client.is_connected


@pytest.mark.parametrize("transport", TLS_TRANSPORTS)
@ends_clean
def test_tls_silent_peer_is_detected(harness: Harness, transport: TransportName) -> None:
    peer = harness.peer(transport)
    client = harness.client(peer, heartbeats=(0, 200))
    events = Events()
    client.add_listener(events)
    connecting = harness.background(client.connect, "connect")
    conn = peer.accept()
    conn.expect("CONNECT")
    answered_at = time.monotonic()  # before CONNECTED is written: the silence starts later
    conn.connected(heartbeat="200,0")
    connecting.result(2.0)
    # Dead after 2 × 200 ms + 50 ms of silence from CONNECTED's arrival.
    (reason,) = events.wait_for("disconnected", timeout=5.0)
    elapsed = time.monotonic() - answered_at
    assert isinstance(reason, stompws.HeartbeatTimeout), reason
    names = events.names()
    assert names.count("heartbeat_timeout") == 1, names
    assert names.index("heartbeat_timeout") < names.index("disconnected"), names
    # Not before the tolerance, and not much later than it: a check that is never made
    # would take the whole 5 s.
    assert 0.4 < elapsed < 3.0, elapsed
    assert conn.wait_closed(2.0), conn.describe()
    assert not client.is_connected


@pytest.mark.parametrize("transport", TLS_TRANSPORTS)
@ends_clean
def test_tls_client_sends_its_heartbeats(harness: Harness, transport: TransportName) -> None:
    peer = harness.peer(transport)
    client = harness.client(peer, heartbeats=(100, 0))
    connecting = harness.background(client.connect, "connect")
    conn = peer.accept()
    conn.expect("CONNECT")
    started = time.monotonic()  # no heart-beat is due before CONNECTED says at what rate
    conn.connected(heartbeat="0,100")
    connecting.result(2.0)
    beats = 0
    while beats < 10:
        item = conn.next_item(timeout=2.0)
        assert item is HEARTBEAT, (item, conn.describe())
        beats += 1
    elapsed = time.monotonic() - started
    # 10 beats at 100 ms take about 1 s: not under half of that (beating too often), and the
    # 2 s per beat above bounds lateness.
    assert elapsed > 0.5, elapsed
    client.send("/queue/sentinel", "end")
    sentinel = conn.skip_to("SEND")
    assert sentinel.headers["destination"] == "/queue/sentinel"
    assert client.is_connected


# -- 3. acking a message from a lost connection -------------------------------------------------


@pytest.mark.parametrize("version", ["1.2", "1.1"])
@pytest.mark.parametrize("mode", ["client", "client-individual"])
@ends_clean
def test_ack_after_reconnect_of_a_message_from_the_lost_connection(
    harness: Harness, version: str, mode: str
) -> None:
    peer = harness.peer("tcp")
    client = harness.client(
        peer, versions=[version], reconnect=stompws.Reconnect(initial=0.01, jitter=0.0)
    )
    events = Events()
    client.add_listener(events)
    first = harness.connect(peer, client, version=version)
    subscription = client.subscribe("/queue/a", ack=mode)
    sub_id = _subscribed(first, "/queue/a")
    first.message("/queue/a", sub_id, "old", ack="ack-old" if version == "1.2" else None)
    old = subscription.get(2.0)
    assert old.body == b"old"
    first.reset()
    second = peer.accept(5.0)
    second.answer_connect(version=version)
    assert _subscribed(second, "/queue/a") == sub_id
    events.wait_for("connected", 2)
    wait_until(events.condition, lambda: True if client.is_connected else None, "connected", 2.0)

    # A clear error, before anything is written: the broker redelivers the message anyway.
    with pytest.raises(stompws.ConnectionClosed, match="connection that has ended"):
        old.ack()
    with pytest.raises(stompws.ConnectionClosed, match="connection that has ended"):
        client.ack(old, receipt=True)
    with pytest.raises(stompws.ConnectionClosed, match="connection that has ended"):
        old.nack()

    # A message of the new connection is acked as usual, and is the only ACK sent.
    second.message("/queue/a", sub_id, "new", ack="ack-new" if version == "1.2" else None)
    new = subscription.get(2.0)
    new.ack()
    ack = second.skip_to("ACK")
    expected = (
        {"id": "ack-new"}
        if version == "1.2"
        else {"message-id": new.headers["message-id"], "subscription": sub_id}
    )
    assert {name: ack.headers.get(name) for name in expected} == expected
    client.send("/queue/sentinel", "end")
    second.skip_to("SEND", destination="/queue/sentinel")
    assert second.count("ACK") == 1, second.describe()
    assert second.count("NACK") == 0, second.describe()
    assert b"ack-old" not in second.received_bytes
    assert old.headers["message-id"].encode() not in second.received_bytes


# -- 4. fail-over across URLs --------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["tcp", "ws"])
@ends_clean
def test_reconnect_fails_over_to_the_next_url(harness: Harness, transport: TransportName) -> None:
    main = harness.peer(transport)
    backup = harness.peer(transport)
    client = stompws.Client(
        [main.url, backup.url],
        heartbeats=(0, 0),
        connect_timeout=2.0,
        write_timeout=2.0,
        receipt_timeout=2.0,
        reconnect=stompws.Reconnect(initial=0.01, jitter=0.0),
    )
    harness.clients.append(client)
    events = Events()
    client.add_listener(events)
    task = harness.background(client.connect, "connect")
    first = main.accept()
    first.answer_connect()
    task.result(2.0)
    client.subscribe("/queue/a", id="s-a")
    client.subscribe("/topic/b", id="s-b", ack="client")
    _subscribed(first, "/topic/b")
    # The main broker goes away for good: its port refuses, its connection is reset.
    main.refuse()
    first.reset()
    second = backup.accept(5.0)
    second.answer_connect()
    events.wait_for("connected", 2)
    subscribes = [second.expect("SUBSCRIBE") for _ in range(2)]
    assert [
        (f.headers["id"], f.headers["destination"], f.headers.get("ack")) for f in subscribes
    ] == [
        ("s-a", "/queue/a", "auto"),
        ("s-b", "/topic/b", "client"),
    ]
    # Every URL is tried in order: the main one again (refused), then the backup.
    assert events.of("connecting") == [main.url, main.url, backup.url]
    names = events.names()
    assert names.count("disconnected") == 2, events.events  # the loss, then the refusal
    second.message("/queue/a", "s-a", "via backup")
    assert client.subscriptions[0].get(2.0).body == b"via backup"
    assert client.url == backup.url


# -- 5. send() racing connect() -------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["tcp", "wss"])
@ends_clean
def test_send_racing_connect_is_never_early_nor_lost(
    harness: Harness, transport: TransportName
) -> None:
    peer = harness.peer(transport)
    client = harness.client(peer)
    condition = threading.Condition()
    outcomes: list[tuple[int, str, float]] = []  # (number, "sent" / "refused", when it ended)
    start = threading.Barrier(2, timeout=5.0)
    enough = threading.Event()

    def sender() -> None:
        start.wait()
        number = 0
        while not enough.is_set() and number < 1_000_000:
            try:
                client.send("/queue/race", str(number))
                outcome = "sent"
            except stompws.NotConnected:
                outcome = "refused"
            with condition:
                outcomes.append((number, outcome, time.monotonic()))
                condition.notify_all()
            number += 1

    def count(outcome: str) -> int:
        return sum(1 for _, what, _ in outcomes if what == outcome)

    connecting = harness.background(client.connect, "connect")
    conn = peer.accept()
    conn.expect("CONNECT")
    sending = harness.background(sender, "sender")
    start.wait()  # sends start while connect() waits for CONNECTED
    wait_until(condition, lambda: True if count("refused") >= 20 else None, "refused sends", 5.0)
    answered_at = time.monotonic()
    conn.connected()
    connecting.result(2.0)
    wait_until(condition, lambda: True if count("sent") >= 50 else None, "sent sends", 5.0)
    enough.set()
    sending.result(5.0)
    client.send("/queue/sentinel", "end")
    conn.skip_to("SEND", destination="/queue/sentinel")

    with condition:
        done = list(outcomes)
    early = [
        (n, when - answered_at) for n, what, when in done if what == "sent" and when < answered_at
    ]
    assert early == [], "sends returned before CONNECTED was even written"
    # Once one send went out, none is refused any more (the client stays connected).
    first_sent = next(i for i, (_, what, _) in enumerate(done) if what == "sent")
    assert all(what == "sent" for _, what, _ in done[first_sent:]), done[first_sent:]
    sent = [str(n) for n, what, _ in done if what == "sent"]
    frames = conn.frames
    assert frames[0].command == "CONNECT"
    on_wire = [f.body.decode() for f in frames if f.command == "SEND"]
    assert on_wire == [*sent, "end"], conn.describe()
    assert all(f.command in ("CONNECT", "SEND") for f in frames), conn.describe()


# -- 6. unsubscribe() racing a delivery ----------------------------------------------------------


@pytest.mark.parametrize("transport", ["tcp", "ws"])
@ends_clean
def test_unsubscribe_racing_delivery_stops_callbacks_when_it_returns(
    harness: Harness, transport: TransportName
) -> None:
    peer = harness.peer(transport)
    client = harness.client(peer)
    condition = threading.Condition()
    delivered: list[bytes] = []
    late: list[bytes] = []  # callbacks that started after unsubscribe() returned
    unsubscribed = False
    sentinel: list[bytes] = []

    def on_race(frame: Frame) -> None:
        with condition:
            if unsubscribed:
                late.append(frame.body)
            delivered.append(frame.body)
            condition.notify_all()

    def on_sentinel(frame: Frame) -> None:
        with condition:
            sentinel.append(frame.body)
            condition.notify_all()

    conn = harness.connect(peer, client)
    race = client.subscribe("/queue/race", callback=on_race)
    client.subscribe("/queue/sentinel", callback=on_sentinel)
    race_id = _subscribed(conn, "/queue/race")
    sentinel_id = _subscribed(conn, "/queue/sentinel")
    stop = threading.Event()
    sent: list[int] = []

    def flood() -> None:
        number = 0
        while not stop.is_set() and number < 100_000:
            # Bodies of growing size: a message cut short would show.
            conn.message("/queue/race", race_id, f"{number}:" + "x" * (number % 300))
            with condition:
                sent.append(number)
                condition.notify_all()
            number += 1

    flooding = harness.background(flood, "flood")
    wait_until(condition, lambda: True if len(delivered) >= 20 else None, "20 deliveries", 5.0)
    race.unsubscribe()
    with condition:
        unsubscribed = True
        before = len(delivered)
    conn.wait_until(lambda: conn.count("UNSUBSCRIBE", id=race_id) == 1, "UNSUBSCRIBE")
    # Messages the broker sent after the UNSUBSCRIBE left, as a broker may before reading it.
    after = len(sent) + 20
    wait_until(condition, lambda: True if len(sent) >= after else None, "more messages", 5.0)
    stop.set()
    flooding.result(5.0)
    conn.message("/queue/sentinel", sentinel_id, "end")
    wait_until(condition, lambda: True if sentinel else None, "the sentinel", 5.0)

    assert late == [], f"{len(late)} callbacks after unsubscribe() returned"
    with condition:
        got = list(delivered)
    assert len(got) == before
    expected = [f"{n}:".encode() + b"x" * (n % 300) for n in range(len(got))]
    assert got == expected  # in order, none missing, none cut short
    assert not race.active
    assert client.subscriptions == [client.subscriptions[0]]
    assert client.subscriptions[0].destination == "/queue/sentinel"


# Red before the fix: unsubscribe() returned as soon as UNSUBSCRIBE was written, while the
# reader was inside the callback (and a message looked up just before could still start a
# callback after the return: the race the test above loops on).
@ends_clean
def test_unsubscribe_waits_for_a_callback_under_way(harness: Harness) -> None:
    peer = harness.peer("tcp")
    client = harness.client(peer)
    condition = threading.Condition()
    order: list[str] = []
    entered = threading.Event()
    release = threading.Event()

    def record(what: str) -> None:
        with condition:
            order.append(what)
            condition.notify_all()

    def on_message(frame: Frame) -> None:
        entered.set()
        record(f"callback {frame.body.decode()} released {release.wait(5.0)}")

    conn = harness.connect(peer, client)
    subscription = client.subscribe("/queue/a", callback=on_message)
    client.subscribe("/queue/sentinel", callback=lambda frame: record("sentinel"))
    sub_id = _subscribed(conn, "/queue/a")
    sentinel_id = _subscribed(conn, "/queue/sentinel")
    conn.message("/queue/a", sub_id, "1")
    conn.message("/queue/a", sub_id, "2")  # read after the unsubscribe: never handed over
    try:
        assert entered.wait(2.0)

        def unsubscribe() -> None:
            subscription.unsubscribe()
            record("unsubscribe returned")

        task = harness.background(unsubscribe, "unsubscribe")
        conn.wait_until(lambda: conn.count("UNSUBSCRIBE", id=sub_id) == 1, "UNSUBSCRIBE")
        # On the wire already, and still waiting for the callback.
        assert not task.done(0.3), order
    finally:
        release.set()
    task.result(2.0)
    conn.message("/queue/sentinel", sentinel_id, "end")
    wait_until(condition, lambda: True if "sentinel" in order else None, "the sentinel", 2.0)
    assert order == ["callback 1 released True", "unsubscribe returned", "sentinel"]


@ends_clean
def test_unsubscribe_from_its_own_callback_returns_at_once(harness: Harness) -> None:
    peer = harness.peer("tcp")
    client = harness.client(peer)
    events = Events()
    client.add_listener(events)
    condition = threading.Condition()
    order: list[str] = []
    subscriptions: list[stompws.Subscription] = []

    def record(what: str) -> None:
        with condition:
            order.append(what)
            condition.notify_all()

    def on_message(frame: Frame) -> None:
        record(f"callback {frame.body.decode()}")
        subscriptions[0].unsubscribe()  # on the reader, inside this very callback
        record("unsubscribed")

    conn = harness.connect(peer, client)
    subscriptions.append(client.subscribe("/queue/a", callback=on_message))
    client.subscribe("/queue/sentinel", callback=lambda frame: record("sentinel"))
    sub_id = _subscribed(conn, "/queue/a")
    sentinel_id = _subscribed(conn, "/queue/sentinel")
    conn.message("/queue/a", sub_id, "1")
    conn.message("/queue/a", sub_id, "2")
    conn.message("/queue/sentinel", sentinel_id, "end")
    wait_until(condition, lambda: True if "sentinel" in order else None, "the sentinel", 2.0)
    assert order == ["callback 1", "unsubscribed", "sentinel"]
    # Written before the sentinel was handed over, but the peer may not have read it yet.
    conn.wait_until(lambda: conn.count("UNSUBSCRIBE", id=sub_id) == 1, "UNSUBSCRIBE")
    assert conn.count("UNSUBSCRIBE") == 1
    assert not subscriptions[0].active
    assert len(events.of("message")) == 3  # listeners see every MESSAGE frame
