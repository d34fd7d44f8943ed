"""``fleetid serve``: the authority under uvicorn, plain HTTP on loopback and/or TLS.

``--http 127.0.0.1:PORT`` is for tests and the demo and is refused on a non-loopback address.
``--https ADDR:PORT`` serves TLS with a server certificate from the fleet PKI
(``FleetCa.tls_server_files``), for the host named in ADDR. Both listeners run in one process and
one event loop, sharing one app.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("serve", help="run the authority (EST over HTTP(S))")
    parser.add_argument("--data-dir", type=Path, required=True, help="the authority's directory")
    parser.add_argument("--http", metavar="127.0.0.1:PORT", help="plain HTTP, loopback only")
    parser.add_argument("--https", metavar="ADDR:PORT", help="TLS listener")
    parser.add_argument(
        "--tls-name",
        action="append",
        default=[],
        metavar="HOST",
        help="extra DNS name or IP for the TLS certificate (repeatable)",
    )
    parser.set_defaults(func=_serve)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from fleetid.api import create_app
    from fleetid.authority.fleet_ca import FleetCa
    from fleetid.clock import SystemClock
    from fleetid.config import Settings, parse_listen
    from fleetid.errors import ConfigError

    http = parse_listen(args.http) if args.http else None
    https = parse_listen(args.https) if args.https else None
    if http is None and https is None:
        raise ConfigError("give --http 127.0.0.1:PORT, --https ADDR:PORT, or both")
    if http is not None and not _is_loopback(http.host):
        raise ConfigError(f"plain HTTP is served on loopback only, not {http.host}")
    settings = Settings.load(args.data_dir, http=http, https=https)
    clock = SystemClock()
    ca = FleetCa.open(settings, clock=clock)
    app = create_app(settings, clock=clock, ca=ca)
    servers = []
    if http is not None:
        config = uvicorn.Config(app, host=http.host, port=http.port, log_level="warning")
        servers.append(uvicorn.Server(config))
    if https is not None:
        names = [https.host, *args.tls_name]
        cert_file, key_file = ca.tls_server_files(names)
        config = uvicorn.Config(
            app,
            host=https.host,
            port=https.port,
            log_level="warning",
            ssl_certfile=str(cert_file),
            ssl_keyfile=str(key_file),
        )
        servers.append(uvicorn.Server(config))
    for server in servers:
        print(f"fleetid: serving on {server.config.host}:{server.config.port}", flush=True)

    async def run() -> None:
        await asyncio.gather(*(server.serve() for server in servers))

    try:
        asyncio.run(run())
    finally:
        ca.close()
    return 0
