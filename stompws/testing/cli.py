"""The command that runs the embedded broker until interrupted: ``stompws broker`` and
``python -m stompws.testing``.

``add_broker_arguments`` and ``run_broker`` are split so that the main ``stompws`` command
can mount them as its ``broker`` subcommand, with its own common options (``--host``,
``--login``, ``--passcode``, ``--heartbeats``) when it has them.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any, TextIO

from ..errors import UsageError
from ..parser import DEFAULT_MAX_FRAME_SIZE
from .broker import Broker, _loopback

__all__ = ["add_broker_arguments", "main", "run_broker"]

DEFAULT_WS_PORT = 15674  # RabbitMQ Web STOMP's, so that code written for it finds this one
DEFAULT_TCP_PORT = 61613  # the STOMP port


def _heartbeats(text: str) -> tuple[int, int]:
    first, comma, second = text.partition(",")
    if comma and first.strip().isdigit() and second.strip().isdigit():
        return int(first), int(second)
    raise argparse.ArgumentTypeError(f"expected SX,SY in milliseconds, not {text!r}")


def _user(text: str) -> tuple[str, str]:
    login, colon, passcode = text.partition(":")
    if not colon or not login:
        raise argparse.ArgumentTypeError(f"expected LOGIN:PASSCODE, not {text!r}")
    return login, passcode


def add_broker_arguments(parser: argparse.ArgumentParser, *, common: bool = True) -> None:
    """Add the broker's options; ``common=False`` leaves out --host, --login, --passcode and
    --heartbeats, for a parser that inherits them from a parent."""
    if common:
        parser.add_argument(
            "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
        )
        parser.add_argument(
            "--login", help="accept only this login (with --passcode); default: any login"
        )
        parser.add_argument("--passcode", default="", help="the passcode for --login")
        parser.add_argument(
            "--heartbeats",
            metavar="SX,SY",
            type=_heartbeats,
            help="the broker's heart-beats in ms (default: whatever each client asks for)",
        )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_WS_PORT,
        help=f"WebSocket port (default {DEFAULT_WS_PORT}; 0 picks a free one)",
    )
    parser.add_argument(
        "--tcp-port",
        type=int,
        default=DEFAULT_TCP_PORT,
        help=f"TCP port (default {DEFAULT_TCP_PORT}; 0 picks a free one)",
    )
    parser.add_argument(
        "--no-websocket", dest="websocket", action="store_false", help="no WebSocket listener"
    )
    parser.add_argument("--no-tcp", dest="tcp", action="store_false", help="no TCP listener")
    parser.add_argument(
        "--user",
        action="append",
        type=_user,
        default=[],
        metavar="LOGIN:PASSCODE",
        help="accept this login (repeatable); without --user or --login any login is accepted",
    )
    parser.add_argument(
        "--max-frame-size",
        type=int,
        default=DEFAULT_MAX_FRAME_SIZE,
        help=f"refuse larger frames (default {DEFAULT_MAX_FRAME_SIZE} bytes)",
    )
    parser.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="let web pages from this Origin (e.g. http://localhost:3000) connect over "
        "WebSocket (repeatable); other browser Origins are refused",
    )
    parser.add_argument(
        "--connect-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="close a client that has not sent a complete CONNECT by then (default 10)",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=256,
        help="refuse connections beyond this many (default 256)",
    )
    parser.add_argument(
        "--verbose", "-v", action="store_true", help="log connections and errors to stderr"
    )


def run_broker(
    args: argparse.Namespace,
    *,
    out: TextIO | None = None,
    stop: threading.Event | None = None,
) -> int:
    """Start a broker as ``args`` say, print its URLs, serve until Ctrl-C, SIGTERM or
    ``stop``; return the exit code."""
    out = out or sys.stdout
    if getattr(args, "verbose", False):
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    users = dict(getattr(args, "user", None) or [])
    login = getattr(args, "login", None)
    if login:
        users[login] = getattr(args, "passcode", None) or ""
    heartbeats: Any = getattr(args, "heartbeats", None)
    try:
        if isinstance(heartbeats, str):
            heartbeats = _heartbeats(heartbeats)
        broker = Broker(
            getattr(args, "host", None) or "127.0.0.1",
            args.port,
            tcp_port=args.tcp_port,
            websocket=args.websocket,
            tcp=args.tcp,
            users=users or None,
            heartbeats=tuple(heartbeats) if heartbeats is not None else None,
            max_frame_size=args.max_frame_size,
            allowed_origins=getattr(args, "allow_origin", None) or (),
            connect_timeout=getattr(args, "connect_timeout", 10.0),
            max_connections=getattr(args, "max_connections", 256),
        )
        broker.start()
    except (UsageError, argparse.ArgumentTypeError) as error:
        print(f"stompws broker: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(
            f"stompws broker: cannot listen: {error.strerror or error} "
            "(choose other ports with --port and --tcp-port; 0 picks free ones)",
            file=sys.stderr,
        )
        return 1
    stop = stop or threading.Event()
    restore = _on_sigterm(stop)
    try:
        print(
            "stompws test broker (for tests and demos; use RabbitMQ or ActiveMQ in production)",
            file=out,
        )
        for url in broker.urls:
            print(f"listening on {url}", file=out)
        print("login: " + (", ".join(sorted(users)) if users else "any"), file=out)
        if not users and not _loopback(broker.host):
            print(
                f"stompws broker: warning: listening on {broker.host}, beyond this machine, "
                "and accepting any login: add --user LOGIN:PASSCODE",
                file=sys.stderr,
                flush=True,
            )
        print("press Ctrl-C to stop", file=out, flush=True)
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        restore()
        broker.stop()
    print("stopped", file=out, flush=True)
    return 0


def _on_sigterm(stop: threading.Event) -> Any:
    """Make SIGTERM end the broker like Ctrl-C (only the main thread may set handlers)."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def restore() -> None:
        with contextlib.suppress(ValueError, TypeError):
            signal.signal(signal.SIGTERM, previous)

    return restore


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m stompws.testing",
        description="Run the embedded STOMP broker (WebSocket and TCP) until Ctrl-C. "
        "For tests and demos, not for production.",
    )
    add_broker_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run_broker(build_parser().parse_args(argv))
