"""``host_and_ports`` in stomp.py's order, and the URLs stompws connects to for them."""

from __future__ import annotations

import socket
from collections.abc import Collection

__all__ = ["HostAndPort", "ordered", "urls_for"]

HostAndPort = tuple[str, int]
_LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def ordered(
    entries: list[HostAndPort | str], prefer_localhost: bool, try_loopback: bool
) -> tuple[list[HostAndPort | str], dict[HostAndPort, HostAndPort]]:
    """Local hosts first (``prefer_localhost``, a stable sort), and 127.0.0.1 tried before
    a local host known by another name (``try_loopback``), as stomp.py does. A URL entry (a
    stompws extension) is never moved for being local. Also returns which entry each added
    127.0.0.1 candidate stands in for."""
    # This machine's own name counts as local too (the name only, no DNS lookup), so that
    # try_loopback adds 127.0.0.1 for it.
    names = _LOCAL_NAMES | {socket.gethostname()}

    def local(entry: HostAndPort | str) -> bool:
        return not isinstance(entry, str) and entry[0] in names

    entries = list(entries)
    if prefer_localhost:
        entries.sort(key=lambda entry: 0 if local(entry) else 1)
    loopback: list[HostAndPort | str] = []
    standing_in: dict[HostAndPort, HostAndPort] = {}
    if try_loopback:
        for entry in entries:
            if local(entry) and not isinstance(entry, str):
                candidate = ("127.0.0.1", entry[1])
                if candidate not in entries and ("localhost", entry[1]) not in entries:
                    loopback.append(candidate)
                    standing_in[candidate] = entry
    return loopback + entries, standing_in


def urls_for(
    entries: list[HostAndPort | str],
    tls_hosts: Collection[HostAndPort],
    websocket: bool,
    ws_path: str | None,
    standing_in: dict[HostAndPort, HostAndPort] | None = None,
) -> list[str]:
    """stomp:// (stomp+ssl:// for the hosts given to ``set_ssl``) or ws:// (wss://) URLs
    with ``ws_path``; an entry that is a URL string is used as it is, query options and
    all. A 127.0.0.1 candidate that stands in for a TLS host is left out: in plain text it
    would send the passcode unencrypted, and over TLS the certificate names the host, not
    127.0.0.1."""
    standing_in = standing_in or {}
    urls = []
    for entry in entries:
        if isinstance(entry, str):
            urls.append(entry)
            continue
        if standing_in.get(entry) in tls_hosts:
            continue
        host, port = entry
        tls = (host, port) in tls_hosts
        shown = f"[{host}]" if ":" in host else host
        if websocket:
            path = ws_path or "/"
            path = path if path.startswith("/") else f"/{path}"
            urls.append(f"{'wss' if tls else 'ws'}://{shown}:{port}{path}")
        else:
            urls.append(f"{'stomp+ssl' if tls else 'stomp'}://{shown}:{port}")
    return urls
