"""``fleetid crl publish``: force a new full and delta CRL for every shard, and the root CRL, at
once; with ``--ca-url`` through the admin API (``fleetid.cli.remote``), by a running server."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from fleetid.cli.remote import add_remote_arguments, is_remote, remote_call

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("crl", help="X.509 CRLs (sharded full + delta, RFC 5280)")
    verbs = parser.add_subparsers(dest="crl_command", metavar="SUBCOMMAND", required=True)
    publish = verbs.add_parser("publish", help="publish a new full and delta CRL of every shard")
    publish.add_argument("--data-dir", type=Path, help="the authority's directory (or --ca-url)")
    add_remote_arguments(publish)
    publish.set_defaults(func=_publish)


def _publish(args: argparse.Namespace) -> int:
    if is_remote(args):
        for p in remote_call(args, "POST", "/crls"):
            base = "" if p["base_number"] is None else f" base {p['base_number']}"
            print(
                f"{p['kind']} issuer {p['issuer_id']} shard {p['shard']} number"
                f" {p['crl_number']}{base} watermark {p['watermark']} {p['size']} bytes"
            )
        return 0
    from fleetid.authority.fleet_ca import FleetCa, crl_path, delta_crl_path, root_crl_path
    from fleetid.clock import SystemClock
    from fleetid.config import Settings
    from fleetid.revocation.crl import CrlKind, publisher_for
    from fleetid.revocation.registry import RevocationRegistry
    from fleetid.store.engine import database_errors

    with database_errors():
        ca = FleetCa.open(Settings.load(args.data_dir), clock=SystemClock())
        try:
            registry = RevocationRegistry(ca.store)
            done = publisher_for(ca, registry=registry).publish(force=True)
            generations = {issuer.id: issuer.generation for issuer in registry.issuers()}
            roots = {root.id: root.generation for root in registry.roots()}
        finally:
            ca.close()
    for p in done:
        if p.issuer_id in roots:
            name = root_crl_path(roots[p.issuer_id])
        else:
            path = crl_path if p.kind is CrlKind.FULL else delta_crl_path
            name = path(generations[p.issuer_id], p.shard)
        base = "" if p.base_number is None else f" base {p.base_number}"
        print(
            f"{p.kind} {name} number {p.crl_number}{base} watermark {p.watermark}"
            f" {len(p.der)} bytes"
        )
    return 0
