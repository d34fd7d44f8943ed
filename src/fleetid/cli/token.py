"""``fleetid token create|list|revoke``: one-time EST credentials (RFC 7030 §3.2.3) as
user:password.

``create --count N --device-prefix P`` makes N tokens for devices P0001..PN in one process and one
transaction (one Python start-up and one audit-log append for the lot, where a
loop of ``create`` paid both per token); ``list`` shows them without their secrets (only digests
are stored); ``revoke USER`` ends an unused one at once (``fleetid.store.token_revocation``). With
``--ca-url`` each asks the admin API instead (``fleetid.cli.remote``), as an operator whose
credential the audit log then names.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

from fleetid.cli.cert import seconds
from fleetid.cli.output import add_authority_arguments, add_json_flag, emit, inspection
from fleetid.cli.remote import add_remote_arguments, is_remote, remote_call, remote_list

__all__ = ["register"]

_COUNT_MAX = 100_000
_LIST_LIMIT = 1000  # the local query's default, and the remote one's
_STATES = ("unused", "used", "expired")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("token", help="one-time enrolment tokens (HTTP Basic for EST)")
    verbs = parser.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    create = verbs.add_parser(
        "create", help="print new single-use credentials as user:password (one, or --count N)"
    )
    add_authority_arguments(create, required=False)
    devices = create.add_mutually_exclusive_group(required=True)
    devices.add_argument("--device-id", help="the device this token enrols")
    devices.add_argument(
        "--device-prefix",
        metavar="PREFIX",
        help="with --count N: tokens for devices PREFIX0001 .. PREFIX<N>",
    )
    create.add_argument(
        "--count", type=int, default=1, metavar="N", help="how many (with --device-prefix)"
    )
    create.add_argument(
        "--start", type=int, default=1, metavar="I", help="the first number after the prefix (1)"
    )
    create.add_argument(
        "--ttl",
        type=int,
        default=None,
        metavar="SECONDS",
        help="lifetime, at most 365 days (default: the policy's token_ttl)",
    )
    add_json_flag(create)
    add_remote_arguments(create)
    create.set_defaults(func=_create)

    listed = verbs.add_parser("list", help="tokens, newest first (never their secrets)")
    add_authority_arguments(listed, required=False)
    listed.add_argument("--device", metavar="ID", help="only this device's")
    listed.add_argument("--state", choices=_STATES, help="unused, used or expired")
    add_json_flag(listed)
    add_remote_arguments(listed)
    listed.set_defaults(func=_list)

    revoke = verbs.add_parser("revoke", help="end an unused token now")
    revoke.add_argument("username", metavar="USER", help="the token's user (t-...)")
    add_authority_arguments(revoke, required=False)
    add_json_flag(revoke)
    add_remote_arguments(revoke)
    revoke.set_defaults(func=_revoke)


def _device_ids(args: argparse.Namespace) -> list[str]:
    from fleetid.errors import ConfigError

    if args.device_id is not None:
        if args.count != 1:
            raise ConfigError("--count goes with --device-prefix (one token per device)")
        return [args.device_id]
    if not 1 <= args.count <= _COUNT_MAX:
        raise ConfigError(f"--count is 1 to {_COUNT_MAX}")
    if args.start < 0:
        raise ConfigError("--start is 0 or more")
    from fleetid.authority.operator_actions import numbered_device_ids

    return numbered_device_ids(args.device_prefix, args.count, args.start)


def _create(args: argparse.Namespace) -> int:
    device_ids = _device_ids(args)
    if is_remote(args):
        body: dict[str, Any] = (
            {"device_id": args.device_id}
            if args.device_id is not None
            else {"device_prefix": args.device_prefix, "count": args.count, "start": args.start}
        )
        if args.ttl is not None:
            body["ttl_seconds"] = args.ttl
        document = remote_call(args, "POST", "/tokens", json=body)
    else:
        document = _create_locally(args, device_ids)

    def text() -> Iterator[str]:
        if args.device_id is not None:
            yield f"{document[0]['username']}:{document[0]['password']}"  # as scripts read it
            return
        for d in document:
            yield f"{d['device_id']} {d['username']}:{d['password']}"

    emit(args, document if args.device_id is None else document[0], text)
    return 0


def _create_locally(args: argparse.Namespace, device_ids: list[str]) -> Any:
    from fleetid.authority.fleet_ca import FleetCa
    from fleetid.authority.operator_views import as_json
    from fleetid.authority.provisioners.token import TOKEN_TTL_MAX, create_token
    from fleetid.cli.output import load_settings
    from fleetid.clock import SystemClock

    settings = load_settings(args)
    # Clamped only so that a huge number reaches create_token's bound instead of overflowing.
    seconds = None if args.ttl is None else min(args.ttl, int(TOKEN_TTL_MAX.total_seconds()) + 1)
    ttl = settings.policy.token_ttl if seconds is None else timedelta(seconds=seconds)
    ca = FleetCa.open(settings, clock=SystemClock())  # its audit log records the tokens
    try:
        # One transaction: every token or none, and one audit append with one checkpoint.
        with ca.store.transaction() as tx:
            tokens = [
                create_token(tx, device_id=device_id, clock=ca.clock, ttl=ttl)
                for device_id in device_ids
            ]
    finally:
        ca.close()
    return as_json(
        [
            {
                "device_id": t.device_id,
                "username": t.username,
                "password": t.password,
                "expires_at": t.expires_at,
            }
            for t in tokens
        ]
    )


def _list(args: argparse.Namespace) -> int:
    if is_remote(args):
        document = remote_list(
            args, "/tokens", {"device": args.device, "state": args.state}, _LIST_LIMIT
        )
    else:
        from fleetid.authority.operator_views import as_json, token_list
        from fleetid.clock import SystemClock

        with inspection(args) as db:
            document = as_json(
                token_list(
                    db,
                    SystemClock().now(),
                    device_id=args.device,
                    state=args.state,
                    limit=_LIST_LIMIT,
                )
            )

    def text() -> Iterator[str]:
        for d in document:
            until = seconds(d["expires_at"])
            yield f"{d['username']}  {d['device_id']}  {d['state']}  expires {until}"

    emit(args, document, text)
    return 0


def _revoke(args: argparse.Namespace) -> int:
    from urllib.parse import quote

    if is_remote(args):
        document = remote_call(args, "DELETE", f"/tokens/{quote(args.username, safe='')}")
    else:
        document = _revoke_locally(args)
    emit(args, document, lambda: [f"revoked {document['username']} ({document['device_id']})"])
    return 0


def _revoke_locally(args: argparse.Namespace) -> Any:
    from fleetid.authority.fleet_ca import FleetCa
    from fleetid.authority.operator_views import as_json
    from fleetid.cli.output import load_settings
    from fleetid.clock import SystemClock
    from fleetid.store.engine import database_errors
    from fleetid.store.token_revocation import revoke_token

    with database_errors():
        ca = FleetCa.open(load_settings(args), clock=SystemClock())
        try:
            with ca.store.transaction() as tx:
                token = revoke_token(tx, args.username, ca.clock.now())
        finally:
            ca.close()
    return as_json(
        {"username": token.username, "device_id": token.device_id, "revoked_at": token.expires_at}
    )
