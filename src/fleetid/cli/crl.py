"""``fleetid crl publish``: force a new full and delta CRL for every shard at once."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("crl", help="X.509 CRLs (sharded full + delta, RFC 5280)")
    verbs = parser.add_subparsers(dest="crl_command", metavar="SUBCOMMAND", required=True)
    publish = verbs.add_parser("publish", help="publish a new full and delta CRL of every shard")
    publish.add_argument("--data-dir", type=Path, required=True, help="the authority's directory")
    publish.set_defaults(func=_publish)


def _publish(args: argparse.Namespace) -> int:
    from fleetid.authority.fleet_ca import FleetCa
    from fleetid.clock import SystemClock
    from fleetid.config import Settings
    from fleetid.revocation.crl import publisher_for

    ca = FleetCa.open(Settings.load(args.data_dir), clock=SystemClock())
    try:
        done = publisher_for(ca).publish(force=True)
    finally:
        ca.close()
    for p in done:
        base = "" if p.base_number is None else f" base {p.base_number}"
        print(
            f"{p.kind} issuer {p.issuer_id} shard {p.shard} number {p.crl_number}{base}"
            f" watermark {p.watermark} {len(p.der)} bytes"
        )
    return 0
