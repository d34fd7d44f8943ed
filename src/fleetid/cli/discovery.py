"""``fleetid discovery list``: the discovery service's event records: the device
reference (a hash of the device's manufacturer identity), the event ID and the service address."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("discovery", help="the discovery service's pending events")
    verbs = parser.add_subparsers(dest="discovery_command", metavar="ACTION", required=True)
    listing = verbs.add_parser("list", help="every pending event record")
    listing.add_argument("--data-dir", type=Path, required=True, help="the authority's directory")
    listing.set_defaults(func=_list)


def _list(args: argparse.Namespace) -> int:
    from fleetid.authority.fleet_ca import FleetCa
    from fleetid.clock import SystemClock
    from fleetid.config import Settings
    from fleetid.store.engine import database_errors
    from fleetid.store.package_repository import PackageRepository

    with database_errors():
        ca = FleetCa.open(Settings.load(args.data_dir), clock=SystemClock())
        try:
            events = PackageRepository(ca.store.engine).all_events()
        finally:
            ca.close()
    for device_ref, event in events:
        print(f"{device_ref} {event.event_id} {event.service_address}")
    return 0
