"""``python -m stompws.testing``: run the embedded broker (see ``stompws.testing.cli``)."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
