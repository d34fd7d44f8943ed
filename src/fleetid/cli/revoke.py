"""``fleetid revoke``: record a revocation (one transaction) by serial or by device."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from fleetid.store.schema import REASONS

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "revoke", help="revoke a certificate (SERIAL_HEX) or every certificate of a device"
    )
    parser.add_argument("--data-dir", type=Path, required=True, help="the authority's directory")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("serial", nargs="?", metavar="SERIAL_HEX", help="certificate serial")
    target.add_argument("--device", metavar="DEVICE_ID", help="revoke all of this device's")
    parser.add_argument(
        "--reason", required=True, choices=REASONS, help="RFC 5280 §5.3.1 reason name"
    )
    parser.set_defaults(func=_revoke)


def _revoke(args: argparse.Namespace) -> int:
    from fleetid.authority.revoke import revoke_device, revoke_serial
    from fleetid.clock import SystemClock
    from fleetid.config import Settings
    from fleetid.store.engine import engine_from_settings
    from fleetid.store.repositories import Store

    store = Store(engine_from_settings(Settings.load(args.data_dir)))
    try:
        if args.device is not None:
            done = revoke_device(store, args.device, args.reason, clock=SystemClock())
        else:
            done = [revoke_serial(store, args.serial, args.reason, clock=SystemClock())]
    finally:
        store.dispose()
    for revocation in done:
        print(f"revoked {revocation.serial} {revocation.reason} seq {revocation.sequence}")
    return 0
