"""``fleetid operator create|list|revoke``: the credentials operators use for the admin API.

Made on the authority's host (``--data-dir``), by whoever holds it: ``create NAME --role ROLE``
has the operator CA (``fleetid.authority.operator_ca``, made on first use) issue a TLS client
certificate and writes it with its new key (owner-only, never overwritten) into ``--out``, to be
handed to the operator; the credential is recorded and the audit log says so. ``revoke SERIAL``
refuses the credential from its next request on. A security officer can revoke remotely too
(``POST /admin/operators/{serial}/revocation``).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fleetid.cli.cert import seconds
from fleetid.cli.output import add_authority_arguments, add_json_flag, emit

__all__ = ["register"]

_ROLES = ("viewer", "operator", "security-officer")
_LOCAL = {"via": "fleetid operator (on the authority's host)"}


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "operator", help="operator credentials for the admin API (TLS client certificates)"
    )
    verbs = parser.add_subparsers(dest="operator_command", metavar="ACTION", required=True)
    create = verbs.add_parser("create", help="issue an operator credential with a role")
    create.add_argument("name", metavar="NAME", help="who the operator is (1-64 characters)")
    add_authority_arguments(create)
    create.add_argument("--role", choices=_ROLES, required=True, help="what the operator may do")
    create.add_argument("--days", type=int, default=90, help="validity in days (90)")
    create.add_argument(
        "--out", type=Path, default=Path(), metavar="DIR", help="where NAME.crt and NAME.key go"
    )
    add_json_flag(create)
    create.set_defaults(func=_create)
    listed = verbs.add_parser("list", help="the operator credentials, newest first")
    add_authority_arguments(listed)
    add_json_flag(listed)
    listed.set_defaults(func=_list)
    revoke = verbs.add_parser("revoke", help="revoke an operator credential now")
    revoke.add_argument("serial", metavar="SERIAL", help="the credential's serial (hex)")
    add_authority_arguments(revoke)
    add_json_flag(revoke)
    revoke.set_defaults(func=_revoke)


def _open(args: argparse.Namespace) -> Any:
    from fleetid.authority.fleet_ca import FleetCa
    from fleetid.cli.output import load_settings
    from fleetid.clock import SystemClock

    return FleetCa.open(load_settings(args), clock=SystemClock())


def _create(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from fleetid.authority.operator_ca import OperatorCa, Role
    from fleetid.errors import ConfigError
    from fleetid.private_file import write_private_file
    from fleetid.store.engine import database_errors
    from fleetid.store.operator_credentials import record_credential

    if not 1 <= args.days <= 825:
        raise ConfigError("--days is 1 to 825")
    names = [args.out / f"{args.name}.crt", args.out / f"{args.name}.key"]
    if "/" in args.name or args.name.startswith("."):
        raise ConfigError("an operator name names a file: no '/' and no leading '.'")
    for path in names:
        if path.exists():
            raise ConfigError(f"{path} exists: an operator credential is never overwritten")
    with database_errors():
        ca = _open(args)
        try:
            operators = OperatorCa.ensure(ca.settings.data_dir, ca.hsm, ca.store, ca.clock)
            issued = operators.issue(args.name, Role(args.role), timedelta(days=args.days))
            write_private_file(names[1], issued.key_pem, replace=False)
            names[0].write_bytes(issued.certificate_pem)
            with ca.store.transaction() as tx:
                record_credential(tx, issued.record, by=_LOCAL)
        finally:
            ca.close()
    record = issued.record
    document = {
        "serial": record.serial,
        "name": record.name,
        "role": record.role,
        "not_after": record.not_after,
        "certificate": names[0],
        "key": names[1],
    }
    emit(
        args,
        document,
        lambda: [
            f"operator {record.name} ({record.role}) serial {record.serial}",
            f"certificate {names[0]}  key {names[1]}  until {record.not_after.isoformat()}",
        ],
    )
    return 0


def _list(args: argparse.Namespace) -> int:
    from fleetid.authority.operator_views import as_json, operator_summary
    from fleetid.store.engine import database_errors
    from fleetid.store.operator_credentials import list_credentials

    with database_errors():
        ca = _open(args)
        try:
            found = list_credentials(ca.store.engine)
        finally:
            ca.close()
    document = as_json([operator_summary(c) for c in found])

    def text() -> Iterator[str]:
        for d in document:
            state = "valid" if d["revoked_at"] is None else f"revoked {seconds(d['revoked_at'])}"
            yield (
                f"{d['serial']}  {d['name']}  {d['role']}  until {seconds(d['not_after'])}  {state}"
            )

    emit(args, document, text)
    return 0


def _revoke(args: argparse.Namespace) -> int:
    from fleetid.store.engine import database_errors
    from fleetid.store.operator_credentials import revoke

    with database_errors():
        ca = _open(args)
        try:
            with ca.store.transaction() as tx:
                done = revoke(tx, args.serial, ca.clock.now(), by=_LOCAL)
        finally:
            ca.close()
    document = {"serial": done.serial, "name": done.name, "revoked_at": done.revoked_at}
    emit(args, document, lambda: [f"revoked operator {done.name} ({done.serial})"])
    return 0
