"""The command line against a fake peer: what it sends, prints and exits with."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from stompws import Frame
from stompws.__main__ import main

from .fakes import Peer, fake_broker, free_port


def serve(frames: list[Frame]) -> Callable[[Peer], None]:
    def script(peer: Peer) -> None:
        peer.accept_connect()
        while True:
            frame = peer.frame()
            if frame is None:
                return
            frames.append(frame)
            if "receipt" in frame.headers:
                peer.send_frame("RECEIPT", {"receipt-id": frame.headers["receipt"]})
            if frame.command == "SUBSCRIBE":
                for n in range(3):
                    peer.send_frame(
                        "MESSAGE",
                        {"subscription": frame.headers["id"], "message-id": str(n), "ack": str(n)},
                        f"body {n}".encode(),
                    )
            if frame.command == "DISCONNECT":
                return

    return script


def test_send_with_headers_and_receipt(capsys: pytest.CaptureFixture[str]) -> None:
    frames: list[Frame] = []
    with fake_broker(serve(frames)) as broker:
        code = main(
            [
                *("send", broker.url, "/queue/a", "hello", "--header", "k=v=w", "--receipt"),
                *("--content-type", "text/plain", "--heartbeats", "0,0"),
            ]
        )
    assert code == 0
    send = frames[0]
    assert (send.command, send.body, send.headers["k"]) == ("SEND", b"hello", "v=w")
    assert send.headers["content-type"] == "text/plain"
    assert "receipt rcpt-" in capsys.readouterr().err


def test_send_reads_a_file(tmp_path: Path) -> None:
    frames: list[Frame] = []
    path = tmp_path / "body.bin"
    path.write_bytes(b"\x00\x01binary")
    with fake_broker(serve(frames)) as broker:
        assert main(["send", broker.url, "/q", "--file", str(path), "--heartbeats", "0,0"]) == 0
    assert frames[0].body == b"\x00\x01binary"


def test_subscribe_json_count_and_ack(capsys: pytest.CaptureFixture[str]) -> None:
    frames: list[Frame] = []
    with fake_broker(serve(frames)) as broker:
        code = main(
            [
                *("subscribe", broker.url, "/q", "--count", "2", "--json"),
                *("--ack", "client-individual", "--heartbeats", "0,0"),
            ]
        )
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["body"] for r in records] == ["body 0", "body 1"]
    assert records[0]["headers"]["message-id"] == "0"
    acks = [f.headers["id"] for f in frames if f.command == "ACK"]
    assert acks == ["0", "1"]


def test_subscribe_verbose_prints_headers(capsys: pytest.CaptureFixture[str]) -> None:
    with fake_broker(serve([])) as broker:
        assert (
            main(["subscribe", broker.url, "/q", "--count", "1", "-v", "--heartbeats", "0,0"]) == 0
        )
    out = capsys.readouterr().out
    assert "message-id: 0" in out and out.rstrip().endswith("body 0")


def test_unreachable_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["send", f"stomp://127.0.0.1:{free_port()}", "/q", "x"]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot connect" in err


def test_refused_exits_4_and_never_shows_the_passcode(capsys: pytest.CaptureFixture[str]) -> None:
    def script(peer: Peer) -> None:
        peer.frame()
        peer.send_frame("ERROR", {"message": "Access refused"})

    with fake_broker(script) as broker:
        code = main(["send", broker.url, "/q", "x", "--login", "u", "--passcode", "pw-123-secret"])
    assert code == 4
    captured = capsys.readouterr()
    assert "Access refused" in captured.err and "pw-123-secret" not in captured.err + captured.out


def test_timeout_exits_5(capsys: pytest.CaptureFixture[str]) -> None:
    def script(peer: Peer) -> None:
        peer.accept_connect()
        peer.answer_receipts_until_disconnect()

    with fake_broker(script) as broker:
        code = main(["subscribe", broker.url, "/q", "--timeout", "0.2", "--heartbeats", "0,0"])
    assert code == 5
    assert "timeout" in capsys.readouterr().err


def test_bad_header_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["send", "stomp://127.0.0.1:1", "/q", "x", "--header", "novalue"]) == 2
    assert "--header takes K=V" in capsys.readouterr().err


@pytest.mark.parametrize("command", [[], ["send"], ["subscribe"]])
def test_help_everywhere(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main([*command, "--help"])
    assert caught.value.code == 0
    assert "exit codes" in capsys.readouterr().out


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: stompws" in capsys.readouterr().out


HOSTILE = "title\x1b]0;pwned\x07 clear\x1b[2J csi\x9b1m del\x7f\nline two\tend"


def serve_one(headers: dict[str, str], body: bytes) -> Callable[[Peer], None]:
    """A broker that answers SUBSCRIBE with one MESSAGE carrying ``headers`` and ``body``."""

    def script(peer: Peer) -> None:
        peer.accept_connect()
        while True:
            frame = peer.frame()
            if frame is None or frame.command == "DISCONNECT":
                if frame is not None:
                    peer.send_frame("RECEIPT", {"receipt-id": frame.headers["receipt"]})
                return
            if frame.command == "SUBSCRIBE":
                sub = {"subscription": frame.headers["id"], "message-id": "1", "ack": "1"}
                peer.send_frame("MESSAGE", {**sub, **headers}, body)

    return script


def test_a_terminal_sees_control_characters_escaped(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    with fake_broker(serve_one({"x-evil": "a\x1b[8mhidden"}, HOSTILE.encode())) as broker:
        args = ["subscribe", broker.url, "/q", "--count", "1", "-v", "--heartbeats", "0,0"]
        assert main(args) == 0
    out = capsys.readouterr().out
    assert not any(ch in out for ch in "\x1b\x07\x9b\x7f"), repr(out)
    assert "title\\x1b]0;pwned\\x07 clear\\x1b[2J csi\\x9b1m del\\x7f" in out
    assert "\nline two\tend" in out  # newline and tab kept in a body
    assert "x-evil: a\\x1b[8mhidden" in out


def test_a_pipe_gets_the_body_as_it_is(capsys: pytest.CaptureFixture[str]) -> None:
    with fake_broker(serve_one({}, HOSTILE.encode())) as broker:
        assert main(["subscribe", broker.url, "/q", "--count", "1", "--heartbeats", "0,0"]) == 0
    assert capsys.readouterr().out == HOSTILE + "\n"


def test_json_escapes_del_and_c1_controls(capsys: pytest.CaptureFixture[str]) -> None:
    with fake_broker(serve_one({}, HOSTILE.encode())) as broker:
        args = ["subscribe", broker.url, "/q", "--count", "1", "--json", "--heartbeats", "0,0"]
        assert main(args) == 0
    out = capsys.readouterr().out
    assert not any(ch in out for ch in "\x1b\x07\x9b\x7f"), repr(out)
    assert json.loads(out)["body"] == HOSTILE  # exact once parsed


def test_error_lines_escape_the_brokers_words(capsys: pytest.CaptureFixture[str]) -> None:
    def script(peer: Peer) -> None:
        peer.frame()
        peer.send_frame("ERROR", {"message": "denied\x1b]0;pwned\x07"})

    with fake_broker(script) as broker:
        assert main(["send", broker.url, "/q", "x", "--heartbeats", "0,0"]) == 4
    err = capsys.readouterr().err
    assert "\x1b" not in err and "\x07" not in err
    assert "denied\\x1b]0;pwned\\x07" in err


def test_a_message_with_an_unknown_charset_is_printed_not_fatal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    headers = {"content-type": "text/plain;charset=bogus-charset"}
    with fake_broker(serve_one(headers, b"caf\xc3\xa9 \xff")) as broker:
        args = ["subscribe", broker.url, "/q", "--count", "1", "--ack", "client"]
        assert main([*args, "--heartbeats", "0,0"]) == 0
    assert capsys.readouterr().out == "caf\u00e9 \ufffd\n"
