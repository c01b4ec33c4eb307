"""A broker cannot make the client hold more than its limits plus a small constant.

A hostile broker (``hostile.py``, over TCP and over WebSocket) sends a 100 MiB frame, with
and without content-length, endless headers, an endless header line or command line. The
client must end the connection with a ``ProtocolError`` that says which limit, close its
socket, stop its threads, and never have held more than the limit plus ``SLACK`` bytes of
Python memory (measured with tracemalloc over the whole process while it happens; the
broker's buffers are made before the measurement starts).

Process state: tracemalloc sees every thread's allocations, so each test starts once the
threads of earlier tests have ended (tests/support/process.py).
"""

from __future__ import annotations

import threading
import time
import tracemalloc
from collections.abc import Iterator

import pytest

import stompws
from stompws.parser import DEFAULT_MAX_FRAME_SIZE

from ..support.process import settle
from .hostile import HostileBroker, HostilePeer

pytestmark = pytest.mark.process_state

MiB = 1024 * 1024
HUGE = 100 * MiB
LIMIT = 1 * MiB
# What the client may hold beyond its frame limit: one socket read (256 KiB), the copy a
# parser makes of an incomplete tail, and the objects of a live connection.
SLACK = 1 * MiB
WAIT = 20.0

FILLER = memoryview(b"v" * MiB)
HEADERS = memoryview(b"h:v\n" * (MiB // 4))
LONG_HEADERS = memoryview((b"h:" + b"v" * (64 * 1024 - 3) + b"\n") * 16)


class Traced:
    """tracemalloc over a test: ``peak()`` is the most held since ``start()``, in bytes."""

    def __init__(self) -> None:
        self.base = 0

    def start(self) -> None:
        tracemalloc.reset_peak()
        self.base = tracemalloc.get_traced_memory()[0]

    def peak(self) -> int:
        return tracemalloc.get_traced_memory()[1] - self.base


@pytest.fixture
def traced() -> Iterator[Traced]:
    # An earlier test's connection ending mid-measurement would count its frees and
    # allocations as this client's.
    settle()
    tracemalloc.start()
    measure = Traced()
    measure.start()
    try:
        yield measure
    finally:
        tracemalloc.stop()


def _hostile_session(
    websocket: bool,
    head: bytes,
    filler: memoryview,
    max_frame_size: int,
    opcode: int = 0x1,
) -> tuple[BaseException | None, HostileBroker, float]:
    sent: list[int] = []

    def script(peer: HostilePeer) -> None:
        sent.append(peer.stream(head, filler, HUGE, opcode))

    waiter = stompws.WaitingListener()
    with HostileBroker(websocket, script) as broker:
        client = stompws.Client(broker.url, heartbeats=(0, 0), max_frame_size=max_frame_size)
        client.add_listener(waiter)
        started = time.monotonic()
        reason: BaseException | None
        try:
            client.connect(timeout=WAIT)
        except stompws.ConnectError as error:
            # The hostile bytes follow CONNECTED at once: a transport that refuses them
            # before the session saw CONNECTED fails the connect itself.
            reason = error
        else:
            reason = waiter.wait_for_disconnect(WAIT)
        elapsed = time.monotonic() - started
        assert not client.is_connected
        client.disconnect(timeout=1.0)
        assert broker.closed_by_client.wait(WAIT), "the client kept the connection open"
    assert sent and sent[0] < HUGE, "the client read the whole 100 MiB"
    return reason, broker, elapsed


CASES = {
    "100MiB-content-length": (
        b"MESSAGE\nsubscription:s\nmessage-id:1\ndestination:/q\ncontent-length:%d\n\n" % HUGE,
        FILLER,
        "max_frame_size",
    ),
    "100MiB-no-content-length": (
        b"MESSAGE\nsubscription:s\nmessage-id:1\ndestination:/q\n\n",
        FILLER,
        "max_frame_size",
    ),
    "endless-headers": (b"MESSAGE\n", HEADERS, "max_header_count"),
    "endless-long-headers": (b"MESSAGE\n", LONG_HEADERS, "max_"),
    "endless-header-line": (b"MESSAGE\nh:", FILLER, "max_header_line"),
    "endless-command-line": (b"MESSAGE", FILLER, "max_header_line"),
}


@pytest.mark.parametrize("websocket", [False, True], ids=["tcp", "ws"])
@pytest.mark.parametrize("case", list(CASES))
def test_hostile_stream_is_cut_at_the_limit(traced: Traced, websocket: bool, case: str) -> None:
    head, filler, limit_named = CASES[case]
    reason, _, elapsed = _hostile_session(websocket, head, filler, LIMIT)
    peak = traced.peak()
    assert isinstance(reason, stompws.ProtocolError), reason
    assert limit_named in str(reason)
    assert peak < LIMIT + SLACK, f"held {peak / MiB:.1f} MiB with a {LIMIT / MiB:g} MiB limit"
    assert elapsed < 10.0
    print(f"{case} {'ws' if websocket else 'tcp'}: peak {peak / MiB:.2f} MiB, {elapsed:.2f} s")


@pytest.mark.parametrize("websocket", [False, True], ids=["tcp", "ws"])
def test_100_mib_frame_with_the_default_limit(traced: Traced, websocket: bool) -> None:
    head = b"MESSAGE\nsubscription:s\nmessage-id:1\ndestination:/q\n\n"  # no content-length
    reason, _, _ = _hostile_session(websocket, head, FILLER, DEFAULT_MAX_FRAME_SIZE)
    peak = traced.peak()
    assert isinstance(reason, stompws.ProtocolError), reason
    assert f"max_frame_size={DEFAULT_MAX_FRAME_SIZE}" in str(reason)
    assert peak < DEFAULT_MAX_FRAME_SIZE + SLACK, f"held {peak / MiB:.1f} MiB"
    print(
        f"100 MiB frame, default limit, {'ws' if websocket else 'tcp'}: peak {peak / MiB:.2f} MiB"
    )


def test_huge_websocket_control_frame_is_refused(traced: Traced) -> None:
    # RFC 6455 caps control frames (ping, pong, close) at 125 bytes; a 100 MiB ping must
    # not be buffered to be answered.
    reason, _, _ = _hostile_session(True, b"", FILLER, LIMIT, opcode=0x9)
    # The reason must name the control frame: a test that accepted any failure passed too
    # when the client died of something else (or read the whole ping and then failed).
    assert isinstance(reason, stompws.StompError), reason
    assert "control frame" in str(reason), reason
    assert traced.peak() < LIMIT + SLACK


# Red before: a WebSocket protocol violation by the broker was reported as a lost
# connection, not as a ProtocolError, so the caller could not tell it from a dead link.
def test_huge_websocket_control_frame_is_a_protocol_error(traced: Traced) -> None:
    reason, _, _ = _hostile_session(True, b"", FILLER, LIMIT, opcode=0x9)
    assert isinstance(reason, stompws.ProtocolError) or isinstance(
        reason.__cause__ if reason is not None else None, stompws.ProtocolError
    ), repr(reason)


@pytest.mark.parametrize("websocket", [False, True], ids=["tcp", "ws"])
def test_subscription_buffer_is_bounded_and_loses_nothing(traced: Traced, websocket: bool) -> None:
    # No listener takes the messages and nobody calls get(): the reader stops reading at
    # max_buffered frames, the broker's writes block (TCP flow control), and memory stays
    # bounded. Then get() drains every message, in order and intact.
    count, size, max_buffered = 2000, 16 * 1024, 8
    bodies = [(b"%06d" % i) * (size // 6) for i in range(count)]
    frames = [
        b"MESSAGE\nsubscription:s\nmessage-id:%d\ndestination:/q\ncontent-length:%d\n\n%s\x00"
        % (i, len(body), body)
        for i, body in enumerate(bodies)
    ]
    sent = []
    progress = threading.Condition()
    written = [0]

    def script(peer: HostilePeer) -> None:
        peer.wait_for(b"SUBSCRIBE")
        for frame in frames:
            peer.send_message(frame)
            with progress:
                written[0] += 1
                progress.notify_all()
        sent.append(len(frames))

    def stalled(quiet: float) -> int:
        """How many frames the broker wrote once it wrote none for ``quiet`` seconds
        (its writes block when the client stops reading), within WAIT."""
        deadline = time.monotonic() + WAIT
        with progress:
            while time.monotonic() < deadline:
                before = written[0]
                progress.wait(quiet)
                if written[0] == before:
                    return before
        raise AssertionError(f"the broker never stopped writing ({written[0]} frames)")

    traced.start()  # after the broker's frames were made
    with HostileBroker(websocket, script) as broker:
        client = stompws.Client(broker.url, heartbeats=(0, 0))
        client.connect(timeout=WAIT)
        inbox = client.subscribe("/q", id="s", max_buffered=max_buffered)
        # Memory is read when the broker is stuck, i.e. when everything the client will
        # take without a get() is in: a fixed sleep read it whenever, maybe too early.
        # 0.5 s without a write is more than 100 times a write's time on this path.
        stuck_at = stalled(0.5)
        peak = traced.peak()
        assert not sent, "the client read everything without anyone taking it"
        assert max_buffered <= stuck_at < count, stuck_at
        received = [inbox.get(timeout=WAIT) for _ in range(count)]
        client.disconnect(timeout=2.0)
    assert [frame.body for frame in received] == bodies
    # At most max_buffered frames waiting in the buffer, those the last read completed
    # (one read: 256 KiB), and the constant of a live connection.
    bound = max_buffered * size + 256 * 1024 * 2 + SLACK
    assert peak < bound, f"held {peak / MiB:.2f} MiB, bound {bound / MiB:.2f} MiB"
    print(f"subscription buffer {'ws' if websocket else 'tcp'}: peak {peak / MiB:.2f} MiB")
