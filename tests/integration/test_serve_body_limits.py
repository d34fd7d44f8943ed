"""Body limits on the real server (``fleetid serve --http``), over raw sockets.

A declared Content-Length over the route's limit is answered 413 at once, before any body is
sent; a chunked body is cut off at the limit; a client that disconnects mid-body leaves no
traceback in the server's log; HEAD on a GET route answers like GET, without content.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
from tests.authority_server import fleetid, free_port, serving

pytestmark = pytest.mark.slow

_EST = "/.well-known/est"


def _head(port: int, request: bytes, *, timeout: float = 5.0) -> tuple[bytes, socket.socket]:
    """Send ``request`` (head and maybe some body), read until the answer's head is in."""
    conn = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    conn.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return data, conn


def _status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def _read_all(conn: socket.socket, data: bytes) -> bytes:
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return body


def test_limits_are_enforced_while_streaming(tmp_path: Path) -> None:
    authority = tmp_path / "authority"
    assert fleetid("ca", "init", "--data-dir", str(authority)).returncode == 0
    port = free_port()
    with serving(authority, [port], ["--http", f"127.0.0.1:{port}"]):
        # A declared 2 GB body: 413 before one octet of it is sent.
        started = time.monotonic()
        answer, conn = _head(
            port,
            f"POST {_EST}/simpleenroll HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: application/pkcs10\r\nContent-Length: 2000000000\r\n\r\n".encode(),
        )
        with conn:
            assert _status(answer) == 413, answer
            problem = json.loads(_read_all(conn, answer))
        assert time.monotonic() - started < 5
        assert problem["status"] == 413
        assert "65536 octets" in problem["detail"]

        # A chunked body without Content-Length: cut off once it passes the limit (1 KiB for
        # the challenge route), while the client is still sending.
        conn = socket.create_connection(("127.0.0.1", port), timeout=10)
        with conn:
            conn.sendall(
                b"POST /enrol/challenge HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            chunk = b"x" * 512
            answer = b""
            try:
                for _ in range(64):
                    conn.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    conn.settimeout(0.05)
                    try:
                        answer += conn.recv(65536)
                    except TimeoutError:
                        continue
                    if b"\r\n\r\n" in answer:
                        break
            except (BrokenPipeError, ConnectionResetError):
                pass
            conn.settimeout(5)
            while b"\r\n\r\n" not in answer:
                more = conn.recv(65536)
                if not more:
                    break
                answer += more
        assert _status(answer) == 413, answer

        # A client that goes away mid-body.
        for path in (f"{_EST}/simpleenroll", "/enrol/challenge", "/ocsp"):
            conn = socket.create_connection(("127.0.0.1", port), timeout=5)
            conn.sendall(
                f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/pkcs10\r\n"
                "Content-Length: 900\r\n\r\n".encode()
                + b"A" * 100
            )
            # Give the server the first bytes before the client goes: the disconnect then falls
            # mid-body. Were the server slower, the test would check less, never fail wrongly.
            time.sleep(0.2)
            conn.close()

        # HEAD on GET routes: GET's status and headers, no content.
        for path in (f"{_EST}/cacerts", "/health", f"{_EST}/csrattrs"):
            got, conn = _head(port, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            with conn:
                assert _status(got) == 200
                _read_all(conn, got)
            head, conn = _head(
                port, f"HEAD {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
            )
            with conn:
                conn.settimeout(1)
                rest = b""
                try:
                    while more := conn.recv(65536):
                        rest += more
                except TimeoutError:
                    pass
            assert _status(head) == 200, head
            assert head.partition(b"\r\n\r\n")[2] + rest == b""
            header_lines = {
                line.split(b":", 1)[0].lower(): line.split(b":", 1)[1].strip()
                for line in head.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]
            }
            got_lines = {
                line.split(b":", 1)[0].lower(): line.split(b":", 1)[1].strip()
                for line in got.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]
            }
            assert header_lines[b"content-type"] == got_lines[b"content-type"]
            assert header_lines[b"content-length"] == got_lines[b"content-length"]
        # The server has answered every later request by now; the pause leaves the event loop
        # time to log anything the disconnects raised before the server is stopped.
        time.sleep(0.5)
    log = (authority / "serve.log").read_text()
    assert "Traceback" not in log, log
    assert "Exception in ASGI application" not in log, log
