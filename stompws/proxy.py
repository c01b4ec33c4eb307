"""HTTP proxies for ws:// and wss://: which one the environment names for an endpoint, and
the CONNECT tunnel through it (RFC 9110 9.3.6).

Why: we open the socket ourselves (see ``ws_transport``), so websocket-client's own proxy
support never ran and ``http_proxy``/``https_proxy`` were silently ignored; a client on a
network that allows only the proxy out simply failed to connect, or, worse, went around a
proxy that was meant to see the traffic. The variables are read as websocket-client reads
them: ``http_proxy`` for ws://, ``https_proxy`` for wss://, ``no_proxy`` for hosts to reach
directly, and with no ``no_proxy`` at all, localhost and 127.0.0.1 reached directly.

Only ``http://`` proxies are supported (the tunnel is plain CONNECT; TLS to the broker runs
inside it, end to end). A proxy of another kind is a ``ConnectError`` rather than a quiet
direct connection. stomp:// and stomp+ssl:// never use a proxy: an HTTP proxy variable says
nothing about raw TCP.

The proxy's answer is read with the same bound as the WebSocket handshake's.
"""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final
from urllib.parse import unquote, urlsplit

from .endpoint import Endpoint
from .errors import ConnectError, ConnectTimeout
from .ws_handshake import read_response_head

if TYPE_CHECKING:
    import socket

    from .sockets import HandshakeGuard

__all__ = ["Proxy", "proxy_for"]

log = logging.getLogger("stompws.proxy")

_DIRECT_BY_DEFAULT: Final = "localhost,127.0.0.1"


@dataclass(frozen=True)
class Proxy:
    """An HTTP proxy to tunnel through; its credentials never appear in its repr."""

    host: str
    port: int
    login: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)

    @property
    def where(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"proxy {host}:{self.port}"

    def open_tunnel(self, sock: socket.socket, endpoint: Endpoint, guard: HandshakeGuard) -> None:
        """Ask the proxy, connected on ``sock``, for a tunnel to ``endpoint``."""
        host = f"[{endpoint.host}]" if ":" in endpoint.host else endpoint.host
        target = f"{host}:{endpoint.port}"
        lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
        if self.login is not None:
            pair = f"{self.login}:{self.password or ''}".encode()
            lines.append(f"Proxy-Authorization: Basic {base64.b64encode(pair).decode()}")
        what = f"tunnel through {self.where} to {target}"
        try:
            sock.settimeout(guard.remaining())
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        except TimeoutError:
            raise ConnectTimeout(f"{what} did not open within {guard.timeout:g} s") from None
        except (OSError, UnicodeEncodeError) as error:
            raise ConnectError(f"{what} failed: {error}") from error
        response, early = read_response_head(sock, guard, what)
        if not 200 <= response.status < 300:
            raise ConnectError(f"{what} refused: HTTP {response.status}")
        if early:
            # The broker speaks only after us; bytes now are the proxy's, not the broker's.
            raise ConnectError(f"{what} failed: the proxy sent data after its answer")


def proxy_for(endpoint: Endpoint, environ: Mapping[str, str] | None = None) -> Proxy | None:
    """The proxy the environment names for ``endpoint``, or None to connect directly."""
    if not endpoint.websocket:
        return None
    proxies = _environment_proxies(os.environ if environ is None else environ)
    url = proxies.get("https" if endpoint.tls else "http")
    if not url:
        return None
    if _bypassed(endpoint.host, proxies.get("no", _DIRECT_BY_DEFAULT)):
        return None
    if "://" not in url:
        url = f"http://{url}"
    parts = urlsplit(url)
    if parts.scheme.lower() != "http" or not parts.hostname:
        raise ConnectError(
            f"the proxy for {endpoint.url} is not an http:// proxy "
            f"({parts.scheme}://{parts.hostname or ''}): only HTTP CONNECT is supported; "
            "set no_proxy for this host to connect directly"
        )
    try:
        port = parts.port or 80
    except ValueError:
        raise ConnectError(f"the proxy for {endpoint.url} has a bad port") from None
    proxy = Proxy(
        host=parts.hostname,
        port=port,
        login=unquote(parts.username) if parts.username is not None else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )
    log.debug("connecting to %s through %s", endpoint.url, proxy.where)
    return proxy


def _bypassed(host: str, no_proxy: str) -> bool:
    """Whether ``no_proxy`` (``*``, or names and domain suffixes, with or without a leading
    dot or a port) says to reach ``host`` directly. Names compare without case."""
    host = host.lower().strip("[]")
    for entry in no_proxy.split(","):
        entry = entry.strip().lower()
        if entry == "*":
            return True
        if entry.startswith("[") and "]" in entry:  # [::1]:8080
            entry = entry[1 : entry.index("]")]
        elif entry.count(":") == 1:  # name:port; the port is not compared
            entry = entry.partition(":")[0]
        entry = entry.lstrip(".")
        if entry and (host == entry or host.endswith("." + entry)):
            return True
    return False


def _environment_proxies(environ: Mapping[str, str]) -> dict[str, str]:
    # urllib's reading of the variables (lower case wins over upper case), on a given
    # mapping so that tests need not change the process's environment.
    found: dict[str, str] = {}
    for name in ("http_proxy", "https_proxy", "no_proxy"):
        value = environ.get(name) or environ.get(name.upper())
        if value:
            found[name[: -len("_proxy")]] = value
    return found
