"""The WebSocket opening handshake (RFC 6455 section 4) on a socket we opened: the request
out, the response in, read by us rather than by websocket-client.

Why by us: websocket-client reads the response a byte at a time with no bound on its size,
so a peer sending an endless header line grew the process by about 18 MB a second until
the connect deadline. Here the response head is read in chunks and may be at most
``MAX_RESPONSE_HEAD`` bytes in all; past that it is a ``ConnectError`` naming the limit.
Bytes that came after the head (a frame the server sent at once) are handed back to the
caller, which feeds them to the framing reader before anything it reads later.

What the response must say: status 101, ``Upgrade: websocket``, ``Connection: Upgrade``,
the ``Sec-WebSocket-Accept`` of our key, and one of the subprotocols we offered. A 3xx is
never followed (that would send ``ws_headers``, often credentials, to a host the caller
never named): it is a ``ConnectError`` naming the status and the Location.

The caller's ``Host`` in ``ws_headers`` replaces the handshake's own, rather than being
refused: a broker behind a reverse proxy may need a virtual host's name (sent twice, a
proxy and a server could each read a different one). ``Origin`` goes out only when the
caller gives one. The headers the handshake itself depends on (Upgrade, Connection, the
Sec-WebSocket ones) are refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import string
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from .endpoint import Endpoint, without_credentials
from .errors import ConnectError, ConnectTimeout, UsageError

if TYPE_CHECKING:
    import socket  # only the types: sockets are opened in ``sockets``

    from .sockets import HandshakeGuard

__all__ = [
    "MAX_RESPONSE_HEAD",
    "HttpResponse",
    "check_headers",
    "handshake",
    "read_response_head",
]

MAX_RESPONSE_HEAD: Final = 64 * 1024
_CHUNK: Final = 4096
_GUID: Final = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_REDIRECTS: Final = frozenset((300, 301, 302, 303, 305, 307, 308))
_END_OF_HEAD: Final = re.compile(rb"\r?\n\r?\n")
# An HTTP header name is a "token" (RFC 9110, 5.1 and 5.6.2).
_TOKEN: Final = frozenset("!#$%&'*+-.^_`|~" + string.ascii_letters + string.digits)
_REPLACEABLE: Final = ("host", "origin")
_RESERVED: Final = frozenset(
    (
        "upgrade",
        "connection",
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-protocol",
        "sec-websocket-extensions",
    )
)


@dataclass(frozen=True)
class HttpResponse:
    """A response head: the status, and each header's values by lower-case name."""

    status: int
    headers: dict[str, list[str]]

    def get(self, name: str) -> str | None:
        values = self.headers.get(name)
        return ", ".join(values) if values else None


def check_headers(headers: dict[str, str] | None) -> dict[str, str]:
    """The caller's ``ws_headers``, checked; keys as given, no two alike but for case.

    A CR or LF in a name or value would end the line and add headers (or a body) of the
    caller's choosing to the request: HTTP header injection. Values are not shown in the
    errors: they are often credentials.
    """
    checked: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in (headers or {}).items():
        name, value = str(name), str(value)
        if not name or not _TOKEN.issuperset(name):
            raise UsageError(f"ws_headers: {name!r} is not a valid HTTP header name")
        if "\r" in value or "\n" in value or "\x00" in value:
            raise UsageError(
                f"ws_headers: the value of {name!r} contains a CR, LF or NUL, which would "
                "end the header line and inject what follows into the handshake"
            )
        lower = name.lower()
        if lower in _RESERVED:
            raise UsageError(
                f"ws_headers: {name!r} is the WebSocket handshake's own header and cannot be set"
            )
        if lower in seen:
            raise UsageError(f"ws_headers: {name!r} is given twice (header names ignore case)")
        seen.add(lower)
        checked[name] = value
    return checked


def _request(endpoint: Endpoint, key: str, offered: list[str], extra: dict[str, str]) -> bytes:
    host = f"[{endpoint.host}]" if ":" in endpoint.host else endpoint.host
    default_port = 443 if endpoint.tls else 80
    hostport = host if endpoint.port == default_port else f"{host}:{endpoint.port}"
    # No Origin unless the caller gives one: it is a browser's header (RFC 6455 10.2), meant
    # to tell a server which web page is asking; a program is no web page, and a broker
    # that refuses foreign browser Origins (ours does) need not guess whether an Origin
    # naming its host by name comes from us or from a page that rebound its DNS name.
    own: dict[str, tuple[str, str]] = {"host": ("Host", hostport)}
    others = []
    for name, value in extra.items():
        if name.lower() in _REPLACEABLE:
            own[name.lower()] = (name, value)
        else:
            others.append((name, value))
    lines = [
        f"GET {endpoint.path} HTTP/1.1",
        *(f"{name}: {value}" for name, value in own.values()),
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        f"Sec-WebSocket-Protocol: {', '.join(offered)}",
        *(f"{name}: {value}" for name, value in others),
    ]
    # Latin-1: what HTTP header values historically are; a value beyond it is refused.
    try:
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    except UnicodeEncodeError:
        raise UsageError(
            "ws_headers: a header holds a character HTTP cannot carry (beyond Latin-1)"
        ) from None


def read_response_head(
    sock: socket.socket, guard: HandshakeGuard, what: str
) -> tuple[HttpResponse, bytes]:
    """An HTTP response head from ``sock``, at most ``MAX_RESPONSE_HEAD`` bytes, and the
    bytes that came after it. ``what`` names the exchange in errors."""
    buffer = bytearray()
    while True:
        end = _END_OF_HEAD.search(buffer, max(len(buffer) - _CHUNK - 4, 0))
        if end is not None:
            break
        if len(buffer) > MAX_RESPONSE_HEAD:
            raise ConnectError(
                f"{what}: the HTTP response head is longer than {MAX_RESPONSE_HEAD} bytes, "
                "the limit"
            )
        try:
            sock.settimeout(guard.remaining())
            chunk = sock.recv(_CHUNK)
        except TimeoutError:
            raise ConnectTimeout(f"{what} did not finish within {guard.timeout:g} s") from None
        except OSError as error:
            raise _failure(guard, what, str(error)) from error
        if not chunk:
            raise _failure(guard, what, "the server closed the connection")
        buffer += chunk
    if end.start() > MAX_RESPONSE_HEAD:
        raise ConnectError(
            f"{what}: the HTTP response head is longer than {MAX_RESPONSE_HEAD} bytes, the limit"
        )
    return _parse_head(bytes(buffer[: end.start()]), what), bytes(buffer[end.end() :])


def _failure(guard: HandshakeGuard, what: str, detail: str) -> ConnectError:
    """Why a read or write of the handshake failed: the guard's deadline shuts the socket
    down, which reads as the server closing it, so a fired deadline is a timeout."""
    if guard.fired:
        return ConnectTimeout(f"{what} did not finish within {guard.timeout:g} s")
    if guard.aborted:
        return ConnectError(f"{what} was aborted")
    return ConnectError(f"{what} failed: {detail}")


def _parse_head(head: bytes, what: str) -> HttpResponse:
    lines = head.decode("latin-1").replace("\r\n", "\n").split("\n")
    version, _, rest = lines[0].partition(" ")
    code = rest.partition(" ")[0]
    if not version.startswith("HTTP/") or len(code) != 3 or not code.isdigit():
        raise ConnectError(f"{what} failed: the answer is not HTTP ({_shown(lines[0])})")
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon:
            raise ConnectError(f"{what} failed: a malformed header line ({_shown(line)})")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return HttpResponse(int(code), headers)


def _shown(text: str) -> str:
    """The peer's text in an error: without credentials, on one line, short."""
    shown = without_credentials(text).encode("ascii", "backslashreplace").decode()
    shown = shown.replace("\r", "\\r").replace("\n", "\\n")
    return repr(shown[:200] + "..." if len(shown) > 200 else shown)


def handshake(
    endpoint: Endpoint,
    sock: socket.socket,
    guard: HandshakeGuard,
    headers: dict[str, str],
    offered: list[str],
) -> tuple[str, bytes]:
    """The opening handshake on ``sock`` with ``headers`` (from ``check_headers``): the
    subprotocol the server chose, and the bytes it sent after its answer."""
    what = f"WebSocket handshake with {endpoint.url}"
    key = base64.b64encode(os.urandom(16)).decode()
    request = _request(endpoint, key, offered, headers)
    try:
        sock.settimeout(guard.remaining())
        sock.sendall(request)
    except TimeoutError:
        raise ConnectTimeout(f"{what} did not finish within {guard.timeout:g} s") from None
    except OSError as error:
        raise _failure(guard, what, str(error)) from error
    response, rest = read_response_head(sock, guard, what)
    if response.status in _REDIRECTS:
        location = response.get("location")
        target = f"to {_shown(location)}" if location else "without a Location"
        raise ConnectError(
            f"{what} answered HTTP {response.status} {target}; "
            "redirects are not followed: connect to the new URL if you trust it"
        )
    if response.status != 101:
        raise ConnectError(f"{what} refused: HTTP {response.status}")
    for name in ("upgrade", "connection"):
        tokens = [item.strip().lower() for item in (response.get(name) or "").split(",")]
        wanted = "websocket" if name == "upgrade" else "upgrade"
        if wanted not in tokens:
            raise ConnectError(f"{what} failed: the answer has no '{name.title()}: {wanted}'")
    expected = base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()
    if not hmac.compare_digest(expected, response.get("sec-websocket-accept") or ""):
        raise ConnectError(f"{what} failed: the Sec-WebSocket-Accept does not match our key")
    chosen = (response.get("sec-websocket-protocol") or "").lower()
    if chosen not in offered:
        raise ConnectError(
            f"{endpoint.url} chose WebSocket subprotocol {chosen!r}, "
            f"which was not offered ({', '.join(offered)})"
        )
    return chosen, rest
