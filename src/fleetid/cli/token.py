"""``fleetid token create``: a one-time EST credential (RFC 7030 §3.2.3) as user:password."""

from __future__ import annotations

import argparse
from datetime import timedelta
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("token", help="one-time enrolment tokens (HTTP Basic for EST)")
    verbs = parser.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    create = verbs.add_parser("create", help="print a new single-use credential as user:password")
    create.add_argument("--data-dir", type=Path, required=True, help="the authority's directory")
    create.add_argument("--device-id", required=True, help="the device this token enrols")
    create.add_argument(
        "--ttl",
        type=int,
        default=None,
        metavar="SECONDS",
        help="lifetime, at most 365 days (default: the policy's token_ttl)",
    )
    create.set_defaults(func=_create)


def _create(args: argparse.Namespace) -> int:
    from fleetid.authority.fleet_ca import FleetCa
    from fleetid.authority.provisioners.token import TOKEN_TTL_MAX, create_token
    from fleetid.clock import SystemClock
    from fleetid.config import Settings

    settings = Settings.load(args.data_dir)
    # Clamped only so that a huge number reaches create_token's bound instead of overflowing.
    seconds = None if args.ttl is None else min(args.ttl, int(TOKEN_TTL_MAX.total_seconds()) + 1)
    ttl = settings.policy.token_ttl if seconds is None else timedelta(seconds=seconds)
    ca = FleetCa.open(settings, clock=SystemClock())  # its audit log records the token
    try:
        with ca.store.transaction() as tx:
            token = create_token(tx, device_id=args.device_id, clock=ca.clock, ttl=ttl)
    finally:
        ca.close()
    print(token)
    return 0
