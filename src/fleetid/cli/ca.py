"""``fleetid ca init`` and ``fleetid ca certs``: create the fleet CA, print its chain."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("ca", help="the fleet CA: create it, print its certificates")
    verbs = parser.add_subparsers(dest="ca_command", metavar="ACTION", required=True)
    init = verbs.add_parser("init", help="create the fleet root and issuing CA (keys in the HSM)")
    init.add_argument("--data-dir", type=Path, required=True, help="the authority's directory")
    init.add_argument("--name", default="fleetid", help="organisation name in the CA subjects")
    init.set_defaults(func=_init)
    certs = verbs.add_parser("certs", help="print the chain as PEM: issuing CA, then the root")
    certs.add_argument("--data-dir", type=Path, required=True, help="the authority's directory")
    certs.set_defaults(func=_certs)


def _init(args: argparse.Namespace) -> int:
    from fleetid.authority.fleet_ca import FleetCa
    from fleetid.clock import SystemClock
    from fleetid.config import Settings

    ca = FleetCa.init(Settings.load(args.data_dir), clock=SystemClock(), name=args.name)
    try:
        for certificate in ca.chain():
            print(f"{certificate.subject.rfc4514_string()}  serial {certificate.serial_number:x}")
    finally:
        ca.close()
    return 0


def _certs(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives import serialization

    from fleetid.authority.fleet_ca import FleetCa
    from fleetid.clock import SystemClock
    from fleetid.config import Settings

    ca = FleetCa.open(Settings.load(args.data_dir), clock=SystemClock())
    try:
        for certificate in ca.chain():
            sys.stdout.write(certificate.public_bytes(serialization.Encoding.PEM).decode())
    finally:
        ca.close()
    return 0
