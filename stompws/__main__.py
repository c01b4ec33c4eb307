"""The ``stompws`` command line.

The subcommands (send, subscribe, broker, bench) arrive with the client; until then the
command answers ``--help`` and ``--version``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ._version import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stompws",
        description="STOMP over WebSocket and TCP from the command line.",
    )
    parser.add_argument("--version", action="version", version=f"stompws {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    build_parser().parse_args(argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
