"""The conversation at DEBUG (stompws.wire), the life-cycle at INFO (stompws.client)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import pytest

import stompws
from stompws import Frame, wirelog
from stompws.testing import Broker

from .support.peer import ScriptedPeer
from .waiting import wait_until

WAIT = 10.0
SECRET = "pa55-w0rd-never-logged"


class Captured(logging.Handler):
    """Every record of the stompws loggers, formatted; waits for one that matches."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[tuple[str, int, str]] = []  # (logger, level, message)
        self.condition = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self.condition:
            self.lines.append((record.name, record.levelno, record.getMessage()))
            self.condition.notify_all()

    def messages(self, logger: str, level: int = logging.DEBUG) -> list[str]:
        with self.condition:
            return [text for name, at, text in self.lines if name == logger and at == level]

    def wait_for(self, logger: str, fragment: str, level: int = logging.DEBUG) -> str:
        return wait_until(
            self.condition,
            lambda: next((m for m in self.messages(logger, level) if fragment in m), None),
            f"{logger} record with {fragment!r} (have {self.messages(logger, level)})",
            WAIT,
        )


@pytest.fixture
def captured() -> Iterator[Captured]:
    handler = Captured()
    root = logging.getLogger("stompws")
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


def test_a_frame_is_one_line_with_its_secrets_hidden() -> None:
    frame = Frame(
        "CONNECT",
        [
            ("login", "guest"),
            ("passcode", SECRET),
            ("X-Auth-Token", SECRET),
            ("client-secret", SECRET),
            ("host", "a\nb"),
        ],
    )
    line = wirelog.describe(frame)
    assert SECRET not in line
    assert line.count("***") == 3
    assert "login:'guest'" in line
    assert "\n" not in line, "a header's line break must not start a log line of its own"


def test_a_body_is_shown_by_its_length_and_first_bytes() -> None:
    long = wirelog.describe(Frame("SEND", {"destination": "/q"}, b"x" * 250))
    assert "250 B" in long and f"{b'x' * wirelog.BODY_SHOWN!r}..." in long
    assert "x" * (wirelog.BODY_SHOWN + 1) not in long
    short = wirelog.describe(Frame("SEND", {"destination": "/q"}, b"hi"))
    assert short.endswith("2 B b'hi'")
    assert wirelog.describe(Frame("UNSUBSCRIBE", {"id": "s"})) == "UNSUBSCRIBE {id:'s'}"


@pytest.mark.parametrize("transport", ["ws", "tcp"])
def test_debug_shows_every_frame_both_ways_and_no_secret(
    captured: Captured, transport: str
) -> None:
    with Broker(users={"guest": SECRET}) as broker:
        url = broker.ws_url if transport == "ws" else broker.tcp_url
        with stompws.Client(url, login="guest", passcode=SECRET, heartbeats=(100, 100)) as client:
            subscription = client.subscribe("/queue/log", ack="client-individual", receipt=True)
            client.send("/queue/log", "hello", receipt=True).wait(WAIT)  # type: ignore[union-attr]
            subscription.get(timeout=WAIT).ack()
            # A heart-beat each way proves the heart-beat logger; the ACK was written before.
            captured.wait_for("stompws.wire.heartbeat", ">>> heart-beat")
            captured.wait_for("stompws.wire.heartbeat", "<<< heart-beat")
    wire = captured.messages("stompws.wire")
    sent = [line.split(">>> ")[1].split(" ")[0] for line in wire if ">>> " in line]
    received = [line.split("<<< ")[1].split(" ")[0] for line in wire if "<<< " in line]
    assert sent == ["CONNECT", "SUBSCRIBE", "SEND", "ACK", "DISCONNECT"], wire
    assert received[0] == "CONNECTED" and received.count("RECEIPT") == 3, wire
    assert "MESSAGE" in received, wire
    assert any("5 B b'hello'" in line for line in wire if "MESSAGE" in line), wire
    everything = "\n".join(text for _, _, text in captured.lines)
    assert SECRET not in everything
    [connected] = captured.messages("stompws.client", logging.INFO)[:1]
    assert connected.startswith(f"connected to {url}: STOMP 1.2, session "), connected
    assert "heart-beats sent every 0.1 s" in connected, connected
    assert captured.messages("stompws.client", logging.INFO)[-1] == f"disconnected from {url}"


def test_info_tells_a_loss_and_the_reconnect(captured: Captured) -> None:
    with ScriptedPeer("tcp") as peer:
        client = stompws.Client(
            peer.url,
            heartbeats=(0, 0),
            reconnect=stompws.Reconnect(initial=0.01, attempts=2),
            connect_timeout=WAIT,
        )
        connecting = threading.Thread(target=client.connect, name="test-connect")
        connecting.start()
        first = peer.accept()
        first.answer_connect()
        connecting.join(WAIT)
        try:
            first.reset()
            second = peer.accept()
            second.answer_connect()
            wait_until(
                captured.condition,
                lambda: (
                    len(
                        [
                            m
                            for m in captured.messages("stompws.client", logging.INFO)
                            if m.startswith("connected to")
                        ]
                    )
                    >= 2
                    or None
                ),
                "a second 'connected to'",
                WAIT,
            )
        finally:
            client.disconnect(timeout=2.0)
    info = captured.messages("stompws.client", logging.INFO)
    lost = [line for line in info if line.startswith(f"connection to {peer.url} lost")]
    assert lost and "(reconnecting)" in lost[0], info
    assert any(line.startswith("reconnect attempt 1 in ") for line in info), info
    assert f"reconnecting to {peer.url}" in info, info
    assert len([line for line in info if line.startswith("connected to")]) == 2, info


def test_nothing_is_formatted_when_debug_is_off(
    captured: Captured, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hot path pays one level check, never a description of the frame."""

    def refuse(frame: Frame) -> str:
        raise AssertionError(f"{frame.command} described with DEBUG off")

    monkeypatch.setattr(wirelog, "describe", refuse)
    logging.getLogger("stompws").setLevel(logging.INFO)
    with Broker() as broker, stompws.Client(broker.tcp_url, heartbeats=(0, 0)) as client:
        subscription = client.subscribe("/queue/quiet", receipt=True)
        client.send("/queue/quiet", "x", receipt=True).wait(WAIT)  # type: ignore[union-attr]
        assert subscription.get(timeout=WAIT).text == "x"
    assert captured.messages("stompws.wire") == []
    assert captured.messages("stompws.client", logging.INFO)  # INFO still there
