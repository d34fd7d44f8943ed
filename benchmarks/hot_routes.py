"""The app's own cost per request on its hot routes, in process: no server, no TLS, no sockets.

The authority's ASGI app is called directly with pre-made ASGI messages, ``--requests`` times,
on one route:

* ``health``: ``GET /health``, the framework's floor (a route that does no work);
* ``refusal``: ``POST /.well-known/est/simpleenroll`` with a wrong media type, refused 415 as
  RFC 9457 problem details before any crypto: the framework's cost of a refusal;
* ``token``: the same route as the token row of ``benchmarks/enrol.py``, a one-time token over
  HTTP Basic and a fresh P-256 CSR per request, signed and written (group commit).

Wall-clock time on a shared machine is noise; instruction counts are not. Under callgrind,
``--callgrind`` switches instrumentation on for the measured loop only (``callgrind_control``),
so the count callgrind prints ("Collected") is the loop's, every thread's, start-up excluded:

    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=/dev/null \\
        .venv/bin/python benchmarks/hot_routes.py health --requests 50 --callgrind
    .venv/bin/python benchmarks/hot_routes.py token --requests 200   # prints CPU ms a request

Without valgrind it prints the process CPU per request of the measured loop.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import subprocess
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fleetid.api.app import create_app
from fleetid.authority.fleet_ca import FleetCa
from fleetid.authority.provisioners.token import create_token
from fleetid.clock import SystemClock
from fleetid.config import Settings

_EST = "/.well-known/est/simpleenroll"

Request = tuple[str, str, list[tuple[bytes, bytes]], bytes]


def _requests(ca: FleetCa, route: str, count: int) -> list[Request]:
    if route == "health":
        return [("GET", "/health", [], b"")] * count
    if route == "refusal":
        headers = [(b"content-type", b"text/plain"), (b"content-length", b"4")]
        return [("POST", _EST, headers, b"abcd")] * count
    made: list[Request] = []
    with ca.store.transaction() as tx:
        for i in range(count):
            token = create_token(tx, device_id=f"hot-{i}", clock=ca.clock, ttl=timedelta(hours=1))
            csr = (
                x509.CertificateSigningRequestBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"hot-{i}")]))
                .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
            )
            body = base64.b64encode(csr.public_bytes(serialization.Encoding.DER))
            basic = base64.b64encode(str(token).encode())
            headers = [
                (b"content-type", b"application/pkcs10"),
                (b"content-length", str(len(body)).encode()),
                (b"authorization", b"Basic " + basic),
            ]
            made.append(("POST", _EST, headers, body))
    return made


async def _call(app: Any, request: Request) -> int:
    method, path, headers, body = request
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "https",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"fleet.test"), *headers],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 443),
    }
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


def _instrument(state: str, callgrind: bool) -> None:
    """Switch callgrind's instrumentation (all threads) around the measured loop."""
    if callgrind:
        subprocess.run(
            ["callgrind_control", "--instr=" + state, str(os.getpid())],
            check=True,
            stdout=subprocess.DEVNULL,
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("route", choices=("health", "refusal", "token"))
    parser.add_argument("--requests", type=int, default=100, help="measured requests")
    parser.add_argument("--prepare", type=int, default=210, help="pre-made (at least --requests)")
    parser.add_argument("--warm-up", type=int, default=10, help="unmeasured first requests")
    parser.add_argument(
        "--callgrind",
        action="store_true",
        help="under valgrind --tool=callgrind --instr-atstart=no: instrument the loop only",
    )
    args = parser.parse_args()
    if args.requests + args.warm_up > args.prepare:
        parser.error("--prepare must cover --warm-up plus --requests")
    with tempfile.TemporaryDirectory(prefix="fleetid-hot-") as tmp:
        settings = Settings.load(Path(tmp), environ={"FLEETID_PUBLIC_URL": "https://fleet.test"})
        clock = SystemClock()
        FleetCa.init(settings, clock=clock, name="Hot Routes").close()
        ca = FleetCa.open(settings, clock=clock)
        requests = _requests(ca, args.route, args.prepare)
        app = create_app(settings, clock=clock, ca=ca)
        expected = 415 if args.route == "refusal" else 200

        async def run() -> float:
            for request in requests[: args.warm_up]:
                if (status := await _call(app, request)) != expected:
                    raise SystemExit(f"{args.route}: warm-up answered {status}, not {expected}")
            _instrument("on", args.callgrind)
            started = time.process_time()
            for request in requests[args.warm_up : args.warm_up + args.requests]:
                status = await _call(app, request)
                if status != expected:
                    raise SystemExit(f"{args.route}: answered {status}, not {expected}")
            spent = time.process_time() - started
            _instrument("off", args.callgrind)
            return spent

        spent = asyncio.run(run())
        app.state.writes.close()
        ca.close()
    print(f"{args.route}: {args.requests} requests, {1000 * spent / args.requests:.3f} ms CPU each")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
