#!/usr/bin/env python3
"""Wait until a broker really answers STOMP (over TCP) or a WebSocket upgrade.

Usage:
    wait_ready.py stomp HOST PORT [--timeout S] [--login L --passcode P]
    wait_ready.py ws HOST PORT PATH [--timeout S] [--protocol v12.stomp]
    common options: --quiet (print nothing on success), --pid PID (stop waiting
    as soon as that process, the broker being started, has exited)

An open port is not enough: RabbitMQ opens its listeners before it accepts
logins, and ActiveMQ may accept TCP before the broker is started.  So this
sends a real STOMP 1.2 CONNECT (no host header, heart-beat 0,0) and waits for
CONNECTED, or a real HTTP/1.1 WebSocket upgrade and waits for 101.  It retries
until the timeout (0 means one attempt) and exits 1 with the last error.
Standard library only, so the broker scripts need nothing but python3.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import os
import socket
import sys
import time

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
ATTEMPT_TIMEOUT = 5.0
RETRY_DELAY = 0.25


class NotReadyError(Exception):
    """The broker answered, or failed to, in a way that is not 'ready'."""


def _recv_until(sock: socket.socket, marker: bytes, limit: int = 65536) -> bytes:
    data = b""
    while marker not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise NotReadyError(f"connection closed after {len(data)} bytes: {data[:200]!r}")
        data += chunk
        if len(data) > limit:
            raise NotReadyError("answer too long without terminator")
    return data


def check_stomp(
    host: str, port: int, login: str | None, passcode: str | None, timeout: float
) -> str:
    headers = ["accept-version:1.0,1.1,1.2", "heart-beat:0,0"]
    if login is not None:
        headers.append(f"login:{login}")
    if passcode is not None:
        headers.append(f"passcode:{passcode}")
    frame = ("CONNECT\n" + "\n".join(headers) + "\n\n").encode() + b"\x00"
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(frame)
        data = _recv_until(sock, b"\x00").lstrip(b"\r\n")
        head = data.split(b"\x00", 1)[0].decode("utf-8", "replace")
        lines = head.replace("\r\n", "\n").split("\n")
        command = lines[0]
        if command != "CONNECTED":
            details = " | ".join(line for line in lines[1:] if line)
            raise NotReadyError(f"got {command or 'nothing'}: {details}")
        with contextlib.suppress(OSError):
            sock.sendall(b"DISCONNECT\n\n\x00")
    info = {k: v for k, _, v in (line.partition(":") for line in lines[1:] if ":" in line)}
    return f"CONNECTED version={info.get('version', '?')} server={info.get('server', '?')}"


def check_ws(host: str, port: int, path: str, protocol: str, timeout: float) -> str:
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {path} HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        f"Sec-WebSocket-Protocol: {protocol}\r\n"
        "\r\n"
    )
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(request.encode())
        head = _recv_until(sock, b"\r\n\r\n").split(b"\r\n\r\n", 1)[0].decode("latin-1")
        status_line, *header_lines = head.split("\r\n")
        if status_line.split(" ")[1:2] != ["101"]:
            raise NotReadyError(f"HTTP answer {status_line!r}")
        fields = {
            k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)
        }
        expected = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        if fields.get("sec-websocket-accept") != expected:
            raise NotReadyError("101 with a wrong Sec-WebSocket-Accept")
        # Masked close frame, status 1000, so the server does not log an error.
        mask = os.urandom(4)
        payload = (1000).to_bytes(2, "big")
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        with contextlib.suppress(OSError):
            sock.sendall(bytes([0x88, 0x80 | len(payload)]) + mask + masked)
    return f"101 Switching Protocols, protocol={fields.get('sec-websocket-protocol', '-')}"


def _alive(pid: int) -> bool:
    """True while process pid exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as f:
            state = f.read().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Wait until a STOMP broker answers.")
    sub = parser.add_subparsers(dest="kind", required=True)
    stomp = sub.add_parser("stomp", help="STOMP CONNECT over TCP, ready on CONNECTED")
    stomp.add_argument("host")
    stomp.add_argument("port", type=int)
    stomp.add_argument("--login")
    stomp.add_argument("--passcode")
    ws = sub.add_parser("ws", help="HTTP WebSocket upgrade, ready on 101")
    ws.add_argument("host")
    ws.add_argument("port", type=int)
    ws.add_argument("path")
    ws.add_argument("--protocol", default="v12.stomp")
    for p in (stomp, ws):
        p.add_argument("--timeout", type=float, default=60.0, help="seconds; 0 = one attempt")
        p.add_argument("--quiet", action="store_true", help="print nothing on success")
        p.add_argument("--pid", type=int, help="give up at once when this process has exited")
    args = parser.parse_args(argv)

    start = time.monotonic()
    deadline = start + max(args.timeout, 0.0)
    target = f"{args.kind} {args.host}:{args.port}"
    if args.kind == "ws":
        target += args.path
    last_error = "no attempt made"
    while True:
        attempt_timeout = max(min(ATTEMPT_TIMEOUT, deadline - time.monotonic()), 1.0)
        try:
            if args.kind == "stomp":
                result = check_stomp(
                    args.host, args.port, args.login, args.passcode, attempt_timeout
                )
            else:
                result = check_ws(args.host, args.port, args.path, args.protocol, attempt_timeout)
        except NotReadyError as exc:
            last_error = str(exc)
        except OSError as exc:
            last_error = f"{type(exc).__name__}: {exc}"
        else:
            if not args.quiet:
                print(f"ready: {target}: {result} ({time.monotonic() - start:.1f} s)")
            return 0
        if args.pid is not None and not _alive(args.pid):
            last_error += f" (and process {args.pid} has exited)"
            break
        if time.monotonic() + RETRY_DELAY >= deadline:
            break
        time.sleep(RETRY_DELAY)
    elapsed = time.monotonic() - start
    print(
        f"wait_ready: {target} not ready after {elapsed:.1f} s;",
        f"last error: {last_error}",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
