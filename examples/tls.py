"""TLS: wss:// and stomp+ssl:// with an ``ssl.SSLContext`` that trusts your CA.

Against your broker, with the CA file that signed its certificate (none: the system's CAs)
and credentials in the URL::

    python examples/tls.py wss://guest:guest@broker.example:15673/ws ca.pem
    python examples/tls.py stomp+ssl://guest:guest@broker.example:61614 ca.pem

With no arguments it makes a throwaway CA and a server certificate for 127.0.0.1 with the
``openssl`` command in a temporary directory, starts the embedded test broker (which has no
TLS listener of its own) and puts a small TLS terminator in front of its TCP and WebSocket
ports, as stunnel or a load balancer would in front of a real broker. Then:

* a client with the default context refuses the certificate (``ConnectError``: "TLS
  certificate of 127.0.0.1 refused"), because no system CA signed it;
* clients whose context trusts the CA (``ssl.create_default_context(cafile=...)``) connect
  over stomp+ssl:// and wss://, with the certificate and the host name checked.

Never turn verification off (``CERT_NONE``) to make an error go away: trust the right CA.
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
import sys
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any

import stompws
from stompws.testing import Broker

WAIT = 10.0  # seconds; anything slower is a failure, not a slow success


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA, and a certificate for 127.0.0.1 and localhost signed by it: (ca, cert, key)."""
    ca, ca_key = directory / "ca.pem", directory / "ca.key"
    cert, key, request = directory / "server.pem", directory / "server.key", directory / "req"
    extensions = directory / "server.ext"
    # The extensions a strict verifier expects (Python 3.13 checks them by default).
    extensions.write_text(
        "basicConstraints = critical, CA:FALSE\n"
        "keyUsage = critical, digitalSignature, keyEncipherment\n"
        "extendedKeyUsage = serverAuth\n"
        "subjectAltName = IP:127.0.0.1, DNS:localhost\n"
        "subjectKeyIdentifier = hash\n"
        "authorityKeyIdentifier = keyid\n"
    )
    elliptic = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for command in (
        [
            *("req", "-x509", *elliptic, "-keyout", ca_key, "-out", ca, "-days", "1"),
            *("-subj", "/CN=stompws example CA"),
            *("-addext", "basicConstraints=critical,CA:TRUE"),
            *("-addext", "keyUsage=critical,keyCertSign,cRLSign"),
        ],
        ["req", *elliptic, "-keyout", key, "-out", request, "-subj", "/CN=127.0.0.1"],
        [
            *("x509", "-req", "-in", request, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial"),
            *("-out", cert, "-days", "1", "-extfile", extensions),
        ],
    ):
        subprocess.run(
            ["openssl", *map(str, command)], check=True, capture_output=True, timeout=WAIT
        )
    return ca, cert, key


class TlsTerminator:
    """Accepts TLS on a free port of 127.0.0.1 and relays the plain bytes to ``upstream``.

    An asyncio loop on one thread does the TLS work for every connection, which is simpler
    and safer than a reading and a writing thread sharing one ``SSLSocket``.
    """

    def __init__(self, upstream_port: int, context: ssl.SSLContext) -> None:
        self.port = 0
        self._upstream_port = upstream_port
        self._context = context
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._failure: BaseException | None = None
        self._relays: set[asyncio.Task[Any]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self._run, name="tls-terminator", daemon=True)

    def __enter__(self) -> TlsTerminator:
        self._thread.start()
        if not self._ready.wait(WAIT) or self._failure is not None:
            raise RuntimeError(f"the TLS terminator did not start: {self._failure}")
        return self

    def __exit__(self, *_: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(WAIT)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:  # reported to __enter__, or lost after a start
            self._failure = error
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.set_exception_handler(_quiet)
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._relay, "127.0.0.1", 0, ssl=self._context)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        await self._stop.wait()
        server.close()
        # Relays still open end by themselves once their sockets are closed; cancelling
        # them instead would make asyncio log each cancellation.
        for writer in list(self._writers):
            writer.close()
        if self._relays:
            await asyncio.wait(self._relays, timeout=WAIT)

    async def _relay(self, client: asyncio.StreamReader, to_client: asyncio.StreamWriter) -> None:
        relay = asyncio.current_task()
        assert relay is not None  # a stream handler always runs in a task
        self._relays.add(relay)
        writers = [to_client]
        self._writers.add(to_client)
        try:
            upstream, to_upstream = await asyncio.open_connection("127.0.0.1", self._upstream_port)
            writers.append(to_upstream)
            self._writers.add(to_upstream)
            await asyncio.gather(_pipe(client, to_upstream), _pipe(upstream, to_client))
        except OSError:
            pass  # the broker is not there: the client sees its connection close
        finally:
            for writer in writers:
                writer.close()
                self._writers.discard(writer)
            self._relays.discard(relay)


def _quiet(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Leave out what a TLS terminator expects: a client that refuses the certificate (as
    the first client here does) or goes away. Anything else is reported as usual."""
    if isinstance(context.get("exception"), OSError):  # ssl.SSLError is an OSError
        return
    loop.default_exception_handler(context)


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
        if sink.can_write_eof():
            sink.write_eof()  # pass a half-close on: the broker answers it by closing
        else:
            sink.close()  # TLS cannot half-close
    except (OSError, asyncio.IncompleteReadError):
        sink.close()  # a peer went away: so does the other side


def round_trip(url: str, context: ssl.SSLContext) -> None:
    queue = f"/queue/tls-{uuid.uuid4().hex[:8]}"
    with stompws.Client(url, heartbeats=(0, 0), ssl_context=context) as client:
        inbox = client.subscribe(queue, receipt=True)
        client.send(queue, "sent over TLS")
        text = inbox.get(timeout=WAIT).text
        print(f"{client.url}: STOMP {client.version}, sent and received {text!r}")


def with_embedded_broker() -> None:
    with tempfile.TemporaryDirectory(prefix="stompws-tls-") as temporary:
        ca, cert, key = make_certificates(Path(temporary))
        print(f"made a throwaway CA and a certificate for 127.0.0.1 in {temporary}")
        server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_context.load_cert_chain(cert, key)
        with Broker() as broker:
            assert broker.tcp_port is not None and broker.ws_port is not None  # the default
            with (
                TlsTerminator(broker.tcp_port, server_context) as tcp,
                TlsTerminator(broker.ws_port, server_context) as ws,
            ):
                tcp_url = f"stomp+ssl://127.0.0.1:{tcp.port}"
                ws_url = f"wss://127.0.0.1:{ws.port}/ws"
                print(f"the embedded broker behind TLS: {tcp_url} and {ws_url}")

                try:
                    round_trip(tcp_url, ssl.create_default_context())
                except stompws.ConnectError as error:
                    print(f"with the system's CAs only: {error}")

                trusting = ssl.create_default_context(cafile=str(ca))
                print("with ssl.create_default_context(cafile='ca.pem'):")
                round_trip(tcp_url, trusting)
                round_trip(ws_url, trusting)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv:
        cafile = argv[1] if len(argv) > 1 else None
        round_trip(argv[0], ssl.create_default_context(cafile=cafile))
        return 0
    if shutil.which("openssl") is None:
        print("the demo needs the openssl command to make certificates; usage:")
        print("  python examples/tls.py wss://user:pass@host:port/ws [CA_FILE]")
        print("  python examples/tls.py stomp+ssl://user:pass@host:port [CA_FILE]")
        return 0
    with_embedded_broker()
    print("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
