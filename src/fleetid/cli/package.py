"""``fleetid package order|status``: order a credential package for a device on the manifest, and
read the packages' states. The device downloads it unattended (``fleetid.device``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["register"]

_KINDS = ("credential", "configuration", "trust-anchors")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("package", help="order credential packages, read their state")
    verbs = parser.add_subparsers(dest="package_command", metavar="ACTION", required=True)
    order = verbs.add_parser("order", help="order a package for one device (by its serial)")
    order.add_argument("--data-dir", type=Path, required=True, help="the authority's directory")
    order.add_argument("--device", required=True, metavar="SERIAL", help="the device's serial")
    order.add_argument("--kind", required=True, choices=_KINDS, help="what the package carries")
    order.add_argument(
        "--content",
        type=Path,
        metavar="FILE",
        help="the configuration bundle, or the new authority's anchors (PEM)",
    )
    order.add_argument("--reference", help="the order's reference (default: KIND-SERIAL)")
    order.add_argument(
        "--confirmation-code-file",
        type=Path,
        metavar="FILE",
        help="a file holding the confirmation code the device must present",
    )
    order.add_argument(
        "--expires-in-days", type=int, default=30, metavar="DAYS", help="order lifetime (30)"
    )
    order.set_defaults(func=_order)
    status = verbs.add_parser("status", help="the state of one package, or of every package")
    status.add_argument("--data-dir", type=Path, required=True, help="the authority's directory")
    status.add_argument("event_id", nargs="?", metavar="EVENT_ID", help="one package")
    status.set_defaults(func=_status)


def _open(data_dir: Path) -> Any:
    from fleetid.authority.fleet_ca import FleetCa
    from fleetid.clock import SystemClock
    from fleetid.config import Settings

    return FleetCa.open(Settings.load(data_dir), clock=SystemClock())


def _order(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from fleetid.authority.lifecycle import lifecycle_service
    from fleetid.authority.preparation import PackageKind
    from fleetid.authority.preparation.for_ca import order_for_device, package_services
    from fleetid.errors import ConfigError
    from fleetid.store.engine import database_errors

    if args.expires_in_days < 1:
        raise ConfigError("--expires-in-days is at least 1")
    content = b"" if args.content is None else args.content.read_bytes()
    code = None
    if args.confirmation_code_file is not None:
        code = args.confirmation_code_file.read_text().strip()
        if not code:
            raise ConfigError(f"{args.confirmation_code_file} holds no confirmation code")
    with database_errors():
        ca = _open(args.data_dir)
        try:
            services = package_services(ca, lifecycle_service(ca))
            record = order_for_device(
                ca,
                services.preparation,
                serial=args.device,
                kind=PackageKind(args.kind),
                content=content,
                reference=args.reference,
                confirmation_code=code,
                lifetime=timedelta(days=args.expires_in_days),
            )
        finally:
            ca.close()
    print(f"{record.event_id} {record.state} expires {record.expires_at.isoformat()}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from fleetid.store.engine import database_errors
    from fleetid.store.package_repository import PackageRepository

    with database_errors():
        ca = _open(args.data_dir)
        try:
            repository = PackageRepository(ca.store.engine)
            if args.event_id is not None:
                from fleetid.errors import NotFoundError

                record = repository.package(args.event_id)
                if record is None:
                    raise NotFoundError(f"no package with event ID {args.event_id}")
                records = [record]
            else:
                records = repository.packages()
        finally:
            ca.close()
    for r in records:
        reason = f" ({r.reason})" if r.reason else ""
        print(f"{r.event_id} {r.kind} {r.reference} {r.state}{reason}")
    return 0
