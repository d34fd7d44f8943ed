"""``fleetid device list`` and ``fleetid device show ID``: the authority's view of its devices.

``show`` draws a device's lifecycle timeline (docs/operations.md) from what the authority
recorded: minted (the IDevID's notBefore, from the imported line manifest), each enrolment token,
enrolled (its first certificate), each refresh (a certificate for the same key) and re-key (a
certificate for a new key), each revocation; then the audit-log entries naming the device
(``fleetid.authority.operator_views``). With ``--ca-url`` both ask the admin API instead
(``fleetid.cli.remote``).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import Any

from fleetid.cli.cert import seconds
from fleetid.cli.output import add_authority_arguments, add_json_flag, emit, inspection
from fleetid.cli.remote import add_remote_arguments, is_remote, remote_call, remote_list

__all__ = ["register_into"]

_DEVICE_STATUSES = ("pending", "enrolled", "revoked", "transferred")
_LIST_LIMIT = 1000


def register_into(verbs: Any) -> None:
    """Add ``list`` and ``show`` to the ``fleetid device`` verbs."""
    listed = verbs.add_parser("list", help="the authority's devices, with their certificates")
    add_authority_arguments(listed, required=False)
    listed.add_argument("--status", choices=_DEVICE_STATUSES, help="only devices in this state")
    add_json_flag(listed)
    add_remote_arguments(listed)
    listed.set_defaults(func=_list)
    show = verbs.add_parser("show", help="a device's lifecycle timeline and audit entries")
    show.add_argument("device_id", metavar="ID", help="the device id")
    add_authority_arguments(show, required=False)
    add_json_flag(show)
    add_remote_arguments(show)
    show.set_defaults(func=_show)


def _list(args: argparse.Namespace) -> int:
    if is_remote(args):
        document = remote_list(args, "/devices", {"status": args.status}, _LIST_LIMIT)
    else:
        from fleetid.authority.operator_views import as_json, device_list

        with inspection(args) as db:
            document = as_json(device_list(db, status=args.status, limit=_LIST_LIMIT))

    def text() -> Iterator[str]:
        for d in document:
            yield (
                f"{d['device_id']}  {d['status']}  {d['provisioner'] or '-'}  "
                f"{d['certificates']} certificates"
            )

    emit(args, document, text)
    return 0


def _show(args: argparse.Namespace) -> int:
    from urllib.parse import quote

    if is_remote(args):
        document = remote_call(args, "GET", f"/devices/{quote(args.device_id, safe='')}")
    else:
        from fleetid.authority.operator_views import as_json, device_document
        from fleetid.clock import SystemClock

        with inspection(args) as db:
            document = as_json(device_document(db, args.device_id, SystemClock().now()))

    def text() -> Iterator[str]:
        yield (
            f"device {document['device_id']}: {document['status']}"
            f" (provisioner {document['provisioner']})"
        )
        if document["idevid_serial"]:
            yield f"IDevID serial {document['idevid_serial']}"
        for event in document["timeline"]:
            yield f"  {seconds(event['at'])}  {event['event']:<8} {event['detail']}"
        for e in document["audit"]:
            yield f"  audit #{e['seq']} {e['logged_at']} {e['kind']}"

    emit(args, document, text)
    return 0
