"""``fleetid revoke``: record a revocation (one transaction) by serial or by device; release a
certificate from hold (``--release``) or escalate a revocation's reason (``--escalate``). With
``--ca-url`` a revocation goes through the admin API (``fleetid.cli.remote``) and the audit log
names the operator."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fleetid.cli.output import add_json_flag, emit
from fleetid.cli.remote import add_remote_arguments, is_remote, remote_call
from fleetid.store.repositories import REVOCATION_REASONS

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "revoke",
        help="revoke a certificate (SERIAL_HEX) or every certificate of a device; release a hold"
        " or escalate a reason",
    )
    parser.add_argument("--data-dir", type=Path, help="the authority's directory (or --ca-url)")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("serial", nargs="?", metavar="SERIAL_HEX", help="certificate serial")
    target.add_argument("--device", metavar="DEVICE_ID", help="revoke all of this device's")
    parser.add_argument(
        "--reason",
        metavar="REASON",
        help=f"RFC 5280 §5.3.1 reason name: {', '.join(REVOCATION_REASONS)} (removeFromCRL is"
        " not a revocation reason: use --release)",
    )
    parser.add_argument(
        "--invalidity-date",
        metavar="ISO8601",
        help="when the key was known or suspected compromised (RFC 5280 §5.3.2), e.g."
        " 2027-03-01T12:00:00Z; written into the CRL entries",
    )
    change = parser.add_mutually_exclusive_group()
    change.add_argument(
        "--release",
        action="store_true",
        help="release SERIAL_HEX from certificateHold: valid again on every channel",
    )
    change.add_argument(
        "--escalate",
        action="store_true",
        help="change revoked SERIAL_HEX's reason to --reason (hold to any, any to a compromise)",
    )
    add_json_flag(parser)
    add_remote_arguments(parser)
    parser.set_defaults(func=_revoke)


def _revoke(args: argparse.Namespace) -> int:
    from fleetid.authority.fleet_ca import FleetCa
    from fleetid.authority.revoke import (
        escalate_serial,
        release_serial,
        revoke_device,
        revoke_serial,
    )
    from fleetid.clock import SystemClock
    from fleetid.config import Settings
    from fleetid.errors import ConfigError
    from fleetid.store.engine import database_errors

    if (args.release or args.escalate) and args.device is not None:
        raise ConfigError("--release and --escalate take a SERIAL_HEX, not --device")
    if args.release and args.reason is not None:
        raise ConfigError("--release takes no --reason (a release is removeFromCRL)")
    if not args.release and args.reason is None:
        raise ConfigError("give --reason (RFC 5280 §5.3.1 reason name)")
    invalidity = None if args.invalidity_date is None else _utc(args.invalidity_date)
    if invalidity is not None and (args.release or args.device is not None):
        raise ConfigError("--invalidity-date goes with a revocation or escalation of SERIAL_HEX")
    if is_remote(args):
        return _revoke_remotely(args, invalidity)
    clock = SystemClock()
    with database_errors():
        # The CA, not only its database: its audit log records the revocation (ca_audit).
        ca = FleetCa.open(Settings.load(args.data_dir), clock=clock)
        store = ca.store
        try:
            if args.device is not None:
                done = revoke_device(store, args.device, args.reason, clock=clock)
            elif args.release:
                done = [release_serial(store, args.serial, clock=clock)]
            elif args.escalate:
                done = [
                    escalate_serial(
                        store, args.serial, args.reason, clock=clock, invalidity_date=invalidity
                    )
                ]
            else:
                done = [
                    revoke_serial(
                        store, args.serial, args.reason, clock=clock, invalidity_date=invalidity
                    )
                ]
        finally:
            ca.close()
    from fleetid.authority.operator_views import as_json, revocation_document

    verb = "released" if args.release else "escalated" if args.escalate else "revoked"
    _print(args, verb, as_json([revocation_document(r) for r in done]))
    return 0


def _print(args: argparse.Namespace, verb: str, documents: list[dict[str, Any]]) -> None:
    emit(
        args,
        documents,
        lambda: [f"{verb} {d['serial']} {d['reason']} seq {d['sequence']}" for d in documents],
    )


def _revoke_remotely(args: argparse.Namespace, invalidity: datetime | None) -> int:
    from urllib.parse import quote

    from fleetid.errors import ConfigError

    if args.release or args.escalate:
        raise ConfigError("--release and --escalate are made on the authority (--data-dir)")
    body: dict[str, Any] = {"reason": args.reason}
    if invalidity is not None:
        body["invalidity_date"] = invalidity.isoformat()
    if args.device is not None:
        path = f"/devices/{quote(args.device, safe='')}/revocation"
    else:
        path = f"/certificates/{quote(args.serial, safe='')}/revocation"
    _print(args, "revoked", remote_call(args, "POST", path, json=body))
    return 0


def _utc(text: str) -> datetime:
    from fleetid.errors import ConfigError

    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"--invalidity-date {text!r} is not an ISO 8601 time") from None
    if when.tzinfo is None:
        raise ConfigError(f"--invalidity-date {text!r} names no time zone (add Z)")
    return when.astimezone(UTC)
