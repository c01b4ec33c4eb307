"""Where to connect: ``parse_url`` turns a ws://, wss://, stomp:// or stomp+ssl:// URL into
an ``Endpoint``, taking the STOMP options out of its query. No I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote, unquote_plus, urlsplit

from .errors import UsageError
from .frame import VERSIONS

__all__ = ["Endpoint", "parse_url", "shown_url", "without_credentials"]

_DEFAULT_PORTS = {"ws": 80, "wss": 443, "stomp": 61613, "stomp+ssl": 61614, "stomp+tls": 61614}


@dataclass(frozen=True)
class Endpoint:
    """Where to connect, parsed from a URL; credentials in it never appear in its repr.

    ``heartbeats``, ``vhost`` and ``versions`` are the STOMP options the URL's query gave
    (None when it gave none); ``path`` keeps the rest of the query, untouched.
    """

    scheme: str
    host: str
    port: int
    path: str = "/"
    login: str | None = field(default=None, repr=False)
    passcode: str | None = field(default=None, repr=False)
    heartbeats: tuple[int, int] | None = None
    vhost: str | None = None
    versions: tuple[str, ...] | None = None

    def __repr__(self) -> str:
        # The dataclass repr would show ``path`` with its query, which may hold an API key.
        path, query, _ = self.path.partition("?")
        return (
            f"Endpoint(scheme={self.scheme!r}, host={self.host!r}, port={self.port!r}, "
            f"path={path + ('?...' if query else '')!r}, heartbeats={self.heartbeats!r}, "
            f"vhost={self.vhost!r}, versions={self.versions!r})"
        )

    @property
    def websocket(self) -> bool:
        return self.scheme in ("ws", "wss")

    @property
    def tls(self) -> bool:
        return self.scheme in ("wss", "stomp+ssl", "stomp+tls")

    @property
    def url(self) -> str:
        """The URL without credentials or query (which may hold an API key): safe to log."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        path = self.path.partition("?")[0] if self.websocket else ""
        return f"{self.scheme}://{host}:{self.port}{path}"

    @property
    def request_url(self) -> str:
        """The URL the WebSocket handshake asks for: the path with its query, no credentials."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.path}"


# Query options that configure the STOMP session rather than the WebSocket request, by the
# names other STOMP clients use. They are matched on the raw (still percent-encoded) name,
# so a server parameter that happens to share a name can be passed through as, for
# example, ``%76ersion=3``.
_HEARTBEAT_OPTIONS = ("heartbeat", "heart-beat", "heartbeats")
_VHOST_OPTIONS = ("vhost", "host")
_VERSION_OPTIONS = ("version", "accept-version", "versions")
_STOMP_OPTIONS = frozenset(_HEARTBEAT_OPTIONS + _VHOST_OPTIONS + _VERSION_OPTIONS)


def parse_url(url: str) -> Endpoint:
    """Parse ``scheme://[login[:passcode]@]host[:port][/path][?query]``.

    The query options ``heartbeat`` (``5000`` for both directions, or ``cx,cy``; also
    spelled ``heart-beat``), ``vhost`` (or ``host``: the STOMP host header) and ``version``
    (``1.2`` or a list ``1.1,1.2``; also ``accept-version``) are taken out of the URL; the
    rest of a ws:// query stays in ``path`` as it was written and goes to the server. A
    stomp:// URL has no request to carry other parameters, so it refuses them.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise UsageError(
            f"unsupported URL scheme {parts.scheme!r} in {shown_url(url)!r}: "
            "use ws://, wss://, stomp:// or stomp+ssl://"
        )
    if not parts.hostname:
        raise UsageError(f"no host in URL {shown_url(url)!r}")
    try:
        port = parts.port or _DEFAULT_PORTS[scheme]
    except ValueError:
        raise UsageError(f"bad port in URL {shown_url(url)!r}") from None
    options, rest = _split_query(parts.query, url)
    if rest and scheme not in ("ws", "wss"):
        raise UsageError(
            f"unknown query option {rest.split('&')[0].split('=')[0]!r} in "
            f"{shown_url(url)!r}: a {scheme}:// URL takes only "
            "heartbeat=, vhost= and version="
        )
    path = parts.path or "/"
    if rest:
        path = f"{path}?{rest}"
    return Endpoint(
        scheme=scheme,
        host=parts.hostname,
        port=port,
        path=path,
        login=unquote(parts.username) if parts.username is not None else None,
        passcode=unquote(parts.password) if parts.password is not None else None,
        heartbeats=_heartbeat_option(options, url),
        vhost=_single_option(options, _VHOST_OPTIONS, url),
        versions=_version_option(options, url),
    )


def _split_query(query: str, url: str) -> tuple[dict[str, str], str]:
    """Our options (decoded) and the rest of the query, byte for byte as it was."""
    options: dict[str, str] = {}
    kept: list[str] = []
    for piece in query.split("&") if query else []:
        raw_name, _, raw_value = piece.partition("=")
        name = raw_name.lower()
        if name not in _STOMP_OPTIONS:
            kept.append(piece)
            continue
        if name in options:
            raise UsageError(f"query option {name!r} given twice in {shown_url(url)!r}")
        value = unquote_plus(raw_value).strip()
        if not value:
            raise UsageError(f"query option {name!r} needs a value in {shown_url(url)!r}")
        options[name] = value
    return options, "&".join(kept)


def _single_option(options: dict[str, str], names: tuple[str, ...], url: str) -> str | None:
    given = [name for name in names if name in options]
    if len(given) > 1:
        raise UsageError(
            f"query options {' and '.join(given)} mean the same; give one in {shown_url(url)!r}"
        )
    return options[given[0]] if given else None


def _heartbeat_option(options: dict[str, str], url: str) -> tuple[int, int] | None:
    value = _single_option(options, _HEARTBEAT_OPTIONS, url)
    if value is None:
        return None
    fields = [item.strip() for item in value.split(",")]
    try:
        numbers = [int(item) for item in fields]
    except ValueError:
        numbers = []
    if len(numbers) not in (1, 2) or any(ms < 0 for ms in numbers):
        raise UsageError(
            f"heartbeat must be milliseconds (5000) or a pair (cx,cy), not {value!r} "
            f"in {shown_url(url)!r}"
        )
    return (numbers[0], numbers[-1])


def _version_option(options: dict[str, str], url: str) -> tuple[str, ...] | None:
    value = _single_option(options, _VERSION_OPTIONS, url)
    if value is None:
        return None
    versions = tuple(item.strip() for item in value.split(","))
    unknown = [item for item in versions if item not in VERSIONS]
    if unknown:
        raise UsageError(
            f"unknown STOMP version {unknown[0]!r} in {shown_url(url)!r}; use {', '.join(VERSIONS)}"
        )
    return versions


def shown_url(url: str) -> str:
    """``url`` fit for a message: no credentials, and no query values (an API key, say).

    The query's parameter names stay, so that an error about one still points at it."""
    url = without_credentials(url)
    base, mark, query = url.partition("?")
    if not mark:
        return url
    query, hash_mark, _ = query.partition("#")
    names = "&".join(
        piece.partition("=")[0] + ("=..." if "=" in piece else "") for piece in query.split("&")
    )
    return f"{base}?{names}" + ("#..." if hash_mark else "")


def without_credentials(url: str) -> str:
    # Cut at the raw text, not at what urlsplit calls the netloc: a password with an
    # unencoded "/", "?" or "#" ends the netloc early, and the rest of it (the secret) would
    # stay in the message about that very malformed URL. Hiding a path's "@" too is harmless.
    scheme, separator, rest = url.partition("://")
    if not separator or "@" not in rest:
        return url
    return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
