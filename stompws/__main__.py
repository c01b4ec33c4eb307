"""The ``stompws`` command line: send, subscribe, bench and broker.

Exit codes (also in ``--help``): 0 success; 2 bad usage; 3 the broker could not be reached
or the connection was lost; 4 the broker refused (ERROR, e.g. bad credentials); 5 a timeout
(connect, receipt or ``--timeout`` with fewer than ``--count`` messages); 6 the broker broke
the protocol; 1 anything else. Errors are one line on stderr; ``--debug`` adds the
traceback. Passcodes are never printed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from ._version import __version__
from .bench import add_bench_arguments, run_bench_command
from .client import Client
from .errors import (
    BrokerError,
    ConnectError,
    ConnectionClosed,
    NotConnected,
    ProtocolError,
    ReceiveTimeout,
    StompError,
    UsageError,
)
from .frame import Frame

EXIT_OK = 0
EXIT_OTHER = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_REFUSED = 4
EXIT_TIMEOUT = 5
EXIT_PROTOCOL = 6

EPILOG = """exit codes: 0 success, 2 bad usage, 3 broker unreachable or connection lost,
4 broker refused (ERROR, e.g. bad credentials), 5 timeout, 6 protocol error, 1 other.
Credentials: the URL (ws://user:pass@host/ws), --login/--passcode, or the environment
(STOMPWS_LOGIN, STOMPWS_PASSCODE). Prefer the environment for the passcode: a command
line is visible to other users of the machine (ps, /proc)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stompws",
        description="STOMP over WebSocket and TCP from the command line.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"stompws {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("url", help="ws://, wss://, stomp:// or stomp+ssl:// URL of the broker")
    common.add_argument("destination", help="e.g. /queue/work or /topic/news")
    common.add_argument("--login", help="login (default: from the URL or $STOMPWS_LOGIN)")
    common.add_argument(
        "--passcode",
        help="passcode (default: the URL or $STOMPWS_PASSCODE); on the command line (like a "
        "passcode in the URL) it is visible to other users in ps: prefer $STOMPWS_PASSCODE",
    )
    common.add_argument("--host", help="the STOMP host header (a virtual host)")
    common.add_argument(
        "--heartbeats", default="10000,10000", metavar="CX,CY", help="in ms (default 10000,10000)"
    )
    common.add_argument(
        "--connect-timeout", type=float, default=10.0, metavar="S", help="seconds (default 10)"
    )
    common.add_argument("--debug", action="store_true", help="log at DEBUG and show tracebacks")

    send = commands.add_parser(
        "send",
        parents=[common],
        help="send one message",
        description="Send one message. The body comes from BODY, --file, or standard input "
        "(when BODY is omitted or '-').",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    send.add_argument("body", nargs="?", default="-", help="the body ('-' or none: stdin)")
    send.add_argument("--file", help="read the body from this file")
    send.add_argument(
        "--header", action="append", default=[], metavar="K=V", help="a header (repeatable)"
    )
    send.add_argument("--content-type", help="the content-type header")
    send.add_argument("--receipt", action="store_true", help="wait for the broker's RECEIPT")
    send.set_defaults(run=run_send)

    subscribe = commands.add_parser(
        "subscribe",
        parents=[common],
        help="print messages as they arrive",
        description="Subscribe and print each message's body (and headers with -v).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subscribe.add_argument("--count", type=int, help="stop after N messages")
    subscribe.add_argument(
        "--ack",
        default="auto",
        choices=["auto", "client", "client-individual"],
        help="ack mode; messages are acked after they are printed",
    )
    subscribe.add_argument("--json", action="store_true", help="one JSON object per message")
    subscribe.add_argument("-v", "--verbose", action="store_true", help="print headers too")
    subscribe.add_argument(
        "--timeout", type=float, metavar="S", help="give up after S seconds without a message"
    )
    subscribe.set_defaults(run=run_subscribe)

    bench = commands.add_parser(
        "bench",
        help="measure throughput and latency against a broker",
        description="Producers and consumers, each with its own connection, exchange\n"
        "--messages messages of --size bytes per producer. Prints msgs/s and the\n"
        "send-to-receive latency p50/p99/max (a progress bar on stderr when it is a\n"
        "terminal). Fails (exit 5) when messages go missing.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_bench_arguments(bench)
    bench.set_defaults(run=run_bench_command)

    broker = commands.add_parser(
        "broker",
        help="run the embedded STOMP broker (for tests and demos)",
        description="Run the embedded STOMP broker on WebSocket and TCP until Ctrl-C. "
        "For tests and demos; use RabbitMQ or ActiveMQ in production. "
        "Needs the websockets package: pip install 'stompws[broker]'.",
    )
    broker.add_argument("--debug", action="store_true", help="show tracebacks")
    try:
        from .testing.cli import add_broker_arguments, run_broker
    except ImportError as error:  # the websockets extra is missing
        missing = str(error)
        broker.set_defaults(run=lambda args: _broker_unavailable(missing))
    else:
        add_broker_arguments(broker)
        broker.set_defaults(run=run_broker)
    return parser


def _broker_unavailable(reason: str) -> int:
    print(f"stompws broker: needs pip install 'stompws[broker]' ({reason})", file=sys.stderr)
    return EXIT_OTHER


def make_client(args: argparse.Namespace) -> Client:
    try:
        send_ms, receive_ms = (int(part) for part in args.heartbeats.split(","))
    except ValueError:
        raise UsageError(f"--heartbeats takes CX,CY in ms, not {args.heartbeats!r}") from None
    return Client(
        args.url,
        login=args.login or os.environ.get("STOMPWS_LOGIN"),
        passcode=args.passcode or os.environ.get("STOMPWS_PASSCODE"),
        host=args.host,
        heartbeats=(send_ms, receive_ms),
        connect_timeout=args.connect_timeout,
    )


def parse_headers(pairs: list[str]) -> list[tuple[str, str]]:
    headers = []
    for pair in pairs:
        name, equals, value = pair.partition("=")
        if not equals or not name:
            raise UsageError(f"--header takes K=V, not {pair!r}")
        headers.append((name, value))
    return headers


def run_send(args: argparse.Namespace) -> int:
    headers = parse_headers(args.header)
    if args.file:
        with open(args.file, "rb") as handle:
            body = handle.read()
    elif args.body == "-":
        body = sys.stdin.buffer.read()
    else:
        body = args.body.encode()
    with make_client(args) as client:
        receipt = client.send(
            args.destination,
            body,
            headers=headers,
            content_type=args.content_type,
            receipt=args.receipt,
        )
        if receipt is not None:
            frame = receipt.wait()
            print(f"receipt {frame.headers.get('receipt-id', '')}", file=sys.stderr)
    return EXIT_OK


def run_subscribe(args: argparse.Namespace) -> int:
    shown = 0
    with make_client(args) as client:
        subscription = client.subscribe(args.destination, ack=args.ack)
        while args.count is None or shown < args.count:
            frame = subscription.get(timeout=args.timeout)
            print_message(frame, as_json=args.json, verbose=args.verbose)
            if args.ack != "auto":
                frame.ack()
            shown += 1
    return EXIT_OK


def print_message(frame: Frame, *, as_json: bool, verbose: bool) -> None:
    body = frame.body.decode(frame.charset, "replace")
    if as_json:
        record = {"command": frame.command, "headers": frame.headers, "body": body}
        # json.dumps escapes C0 controls but not DEL or C1 (a CSI in one code point): those
        # are escaped too, which keeps the JSON exact and the terminal safe.
        print(_escape_json(json.dumps(record, ensure_ascii=False)), flush=True)
        return
    # Bodies and headers come from whoever could publish to the destination: on a terminal
    # their control characters (a title change, a screen clear, hidden text) are shown
    # escaped, never obeyed. A pipe gets the bytes as they are.
    shown = terminal_safe if sys.stdout.isatty() else _as_is
    if verbose:
        for name, value in frame.header_list:
            print(f"{shown(name, False)}: {shown(value, False)}")
        print()
    print(shown(body, True), flush=True)


_CONTROLS = {
    code: f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    for code in [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0), 0x2028, 0x2029]
}
_CONTROLS_IN_TEXT = {code: text for code, text in _CONTROLS.items() if code not in (0x09, 0x0A)}
_JSON_ESCAPES = {code: f"\\u{code:04x}" for code in [0x7F, *range(0x80, 0xA0), 0x2028, 0x2029]}


def terminal_safe(text: str, keep_lines: bool) -> str:
    """``text`` with every control character written as an escape (``\\x1b``); newline and
    tab stay when ``keep_lines``."""
    return text.translate(_CONTROLS_IN_TEXT if keep_lines else _CONTROLS)


def _as_is(text: str, keep_lines: bool) -> str:
    return text


def _escape_json(text: str) -> str:
    return text.translate(_JSON_ESCAPES)


def exit_code(error: BaseException) -> int:
    codes: list[tuple[type[BaseException], int]] = [
        (UsageError, EXIT_USAGE),
        (BrokerError, EXIT_REFUSED),
        (ProtocolError, EXIT_PROTOCOL),
        (TimeoutError, EXIT_TIMEOUT),
        (ConnectError, EXIT_UNREACHABLE),
        (ConnectionClosed, EXIT_UNREACHABLE),
        (NotConnected, EXIT_UNREACHABLE),
        (OSError, EXIT_OTHER),
    ]
    for kind, code in codes:
        if isinstance(error, kind):
            return code
    return EXIT_OTHER


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    run: Callable[[argparse.Namespace], int] | None = getattr(args, "run", None)
    if run is None:
        parser.print_help()
        return EXIT_USAGE
    if args.debug:
        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(name)s %(message)s")
    started = time.monotonic()
    try:
        return run(args)
    except KeyboardInterrupt:
        return 130
    except (StompError, OSError) as error:
        if args.debug:
            logging.getLogger("stompws.cli").exception(
                "failed after %.1f s", time.monotonic() - started
            )
        # Always escaped: an error line can carry the broker's ERROR message or a WebSocket
        # close reason, which are the peer's words.
        print(f"stompws {args.command}: {terminal_safe(describe(error), False)}", file=sys.stderr)
        return exit_code(error)


def describe(error: Any) -> str:
    if isinstance(error, ReceiveTimeout):
        return f"timeout: {error}"
    return str(error) or error.__class__.__name__


if __name__ == "__main__":
    raise SystemExit(main())
