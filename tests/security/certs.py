"""Test certificates made with the ``openssl`` command: a CA, and what it signs.

Every test run makes its own, in a temporary directory, so no key is ever committed and
nothing depends on the machine's trust store. EC P-256 keeps it fast (about 10 ms per
key). The server certificates carry the extensions a strict verifier asks for (Python
3.13 sets VERIFY_X509_STRICT by default): an identity in subjectAltName, key usages and key
identifiers.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

_EC = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
_TIMEOUT = 30.0


def have_openssl() -> bool:
    return shutil.which("openssl") is not None


def _openssl(*args: object) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=_TIMEOUT)


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path


@dataclass(frozen=True)
class Certificates:
    ca: Path  # the CA the tests trust
    server: KeyPair  # signed by the CA, for IP 127.0.0.1 and DNS localhost
    wrong_host: KeyPair  # signed by the CA, for DNS other.invalid only
    self_signed: KeyPair  # for 127.0.0.1, signed by nobody but itself
    client: KeyPair  # signed by the CA, for client authentication (mutual TLS)
    other_client: KeyPair  # a client certificate from an unknown CA


def _extensions(directory: Path, name: str, usage: str, names: str | None) -> Path:
    path = directory / f"{name}.ext"
    lines = [
        "basicConstraints = critical, CA:FALSE",
        "keyUsage = critical, digitalSignature, keyEncipherment",
        f"extendedKeyUsage = {usage}",
        "subjectKeyIdentifier = hash",
        "authorityKeyIdentifier = keyid",
    ]
    if names is not None:
        lines.append(f"subjectAltName = {names}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _ca(directory: Path, name: str) -> KeyPair:
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    _openssl(
        *("req", "-x509", *_EC, "-keyout", key, "-out", cert, "-days", "2"),
        *("-subj", f"/CN=stompws {name}"),
        *("-addext", "basicConstraints=critical,CA:TRUE"),
        *("-addext", "keyUsage=critical,keyCertSign,cRLSign"),
        *("-addext", "subjectKeyIdentifier=hash"),
    )
    return KeyPair(cert, key)


def _signed(
    directory: Path, name: str, ca: KeyPair, subject: str, usage: str, names: str | None
) -> KeyPair:
    cert, key, request = directory / f"{name}.pem", directory / f"{name}.key", directory / name
    _openssl("req", *_EC, "-keyout", key, "-out", request, "-subj", f"/CN={subject}")
    _openssl(
        *("x509", "-req", "-in", request, "-CA", ca.cert, "-CAkey", ca.key),
        *("-CAcreateserial", "-out", cert, "-days", "2"),
        *("-extfile", _extensions(directory, name, usage, names)),
    )
    return KeyPair(cert, key)


def make_certificates(directory: Path) -> Certificates:
    ca = _ca(directory, "ca")
    stranger = _ca(directory, "unknown-ca")
    self_signed_cert, self_signed_key = directory / "self.pem", directory / "self.key"
    _openssl(
        *("req", "-x509", *_EC, "-keyout", self_signed_key, "-out", self_signed_cert),
        *("-days", "2", "-subj", "/CN=127.0.0.1"),
        *("-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
    )
    return Certificates(
        ca=ca.cert,
        server=_signed(
            directory, "server", ca, "127.0.0.1", "serverAuth", "IP:127.0.0.1, DNS:localhost"
        ),
        wrong_host=_signed(
            directory, "wrong-host", ca, "other.invalid", "serverAuth", "DNS:other.invalid"
        ),
        self_signed=KeyPair(self_signed_cert, self_signed_key),
        client=_signed(directory, "client", ca, "stompws test client", "clientAuth", None),
        other_client=_signed(directory, "other-client", stranger, "stranger", "clientAuth", None),
    )
