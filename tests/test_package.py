"""The public face: __all__ is honest, py.typed ships, the error tree is as documented."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import stompws
from stompws import errors


def test_all_names_exist_and_are_public() -> None:
    for name in stompws.__all__:
        assert hasattr(stompws, name), name
    public = {n for n in dir(stompws) if not n.startswith("_") and n[0].isupper()}
    assert public <= set(stompws.__all__)


def test_py_typed_ships() -> None:
    assert (Path(stompws.__file__).parent / "py.typed").is_file()


@pytest.mark.parametrize(
    ("child", "parents"),
    [
        (errors.UsageError, (errors.StompError, ValueError)),
        (errors.NotConnected, (errors.StompError,)),
        (errors.ConnectTimeout, (errors.ConnectError, TimeoutError)),
        (errors.BrokerError, (errors.StompError,)),
        (errors.ProtocolError, (errors.StompError,)),
        (errors.HeartbeatTimeout, (errors.ConnectionClosed, TimeoutError)),
        (errors.WriteTimeout, (errors.ConnectionClosed, TimeoutError)),
        (errors.ReconnectFailed, (errors.ConnectionClosed,)),
        (errors.ReceiptTimeout, (errors.StompError, TimeoutError)),
        (errors.ReceiveTimeout, (errors.StompError, TimeoutError)),
    ],
)
def test_error_tree(child: type[Exception], parents: tuple[type[Exception], ...]) -> None:
    for parent in parents:
        assert issubclass(child, parent)


def test_broker_error_carries_the_frame() -> None:
    frame = stompws.Frame("ERROR", {"message": "Access refused"}, b"bad login")
    error = stompws.BrokerError(frame)
    assert error.frame is frame
    assert str(error) == "broker sent ERROR: Access refused (bad login)"


def test_connection_closed_says_code_and_reason() -> None:
    error = stompws.ConnectionClosed("STOMP died", code=1000)
    assert (error.code, error.reason) == (1000, "STOMP died")
    assert str(error) == "STOMP died (close code 1000)"


def test_command_line_answers_help_and_version() -> None:
    run = [sys.executable, "-m", "stompws"]
    result = subprocess.run([*run, "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and stompws.__version__ in result.stdout
    result = subprocess.run([*run, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "usage: stompws" in result.stdout
