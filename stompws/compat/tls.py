"""``set_ssl`` as stomp.py takes it, turned into the ``ssl.SSLContext`` stompws uses."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import UsageError

__all__ = ["DEFAULT_SSL_VERSION", "SslParams"]

DEFAULT_SSL_VERSION = ssl.PROTOCOL_TLS_CLIENT
# stomp.py's ssl_version values (the PROTOCOL_* constants) as the lowest version allowed.
_MINIMUM_VERSIONS = {
    getattr(ssl, name): version
    for name, version in (
        ("PROTOCOL_TLSv1", ssl.TLSVersion.TLSv1),
        ("PROTOCOL_TLSv1_1", ssl.TLSVersion.TLSv1_1),
        ("PROTOCOL_TLSv1_2", ssl.TLSVersion.TLSv1_2),
    )
    if hasattr(ssl, name)
}


@dataclass(frozen=True)
class SslParams:
    """One ``set_ssl`` call's settings (the key file's password is kept out of the repr)."""

    key_file: str | None = None
    cert_file: str | None = None
    ca_certs: str | None = None
    cert_validator: Callable[..., Any] | None = None
    ssl_version: int = DEFAULT_SSL_VERSION
    password: str | None = None
    verify: bool = True

    def __repr__(self) -> str:
        return (
            f"SslParams(ca_certs={self.ca_certs!r}, cert_file={self.cert_file!r}, "
            f"verify={self.verify})"
        )

    def as_dict(self) -> dict[str, Any]:
        """What stomp.py's ``get_ssl`` returns."""
        return {
            "key_file": self.key_file,
            "cert_file": self.cert_file,
            "ca_certs": self.ca_certs,
            "cert_validator": self.cert_validator,
            "ssl_version": self.ssl_version,
            "password": self.password,
            "verify": self.verify,
        }

    def context(self) -> ssl.SSLContext:
        """The context for these settings: the given CA file or the system's CAs; the
        server's certificate and name checked unless ``verify`` is false; the client
        certificate loaded when given (the key from ``cert_file`` when no ``key_file``)."""
        if self.cert_validator is not None:
            # Quietly skipping a certificate check the caller asked for would be worse than
            # refusing: do it in an SSLContext (e.g. a verify callback) or after connecting.
            raise UsageError(
                "set_ssl(cert_validator=...) is not supported by stompws.compat; check the "
                "certificate through an ssl.SSLContext passed to stompws.Client instead"
            )
        # Always a client context, whatever ssl_version says: PROTOCOL_TLS and
        # PROTOCOL_TLSv1_2 (what stomp.py users pass) make contexts that verify the chain
        # but not the host name, so the passcode could go to a server whose certificate
        # names another host. The version becomes a minimum instead.
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        minimum = _MINIMUM_VERSIONS.get(self.ssl_version)
        if minimum is not None:
            context.minimum_version = minimum
        if self.ca_certs:
            context.load_verify_locations(self.ca_certs)
        else:
            context.load_default_certs()
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file or self.cert_file, self.password)
        if self.verify:
            context.verify_mode = ssl.CERT_REQUIRED
        else:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context
