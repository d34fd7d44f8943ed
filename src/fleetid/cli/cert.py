"""``fleetid cert list|show``: the certificates this authority issued, read from its database.

In the shape of ``step certificate inspect`` and ``vault list pki/certs`` (docs/operations.md):
``list`` filters by device, by status (``valid``, ``revoked``, ``expired``: expiry is computed
against the clock, RFC 5280 §4.1.2.5) and by ``--expiring-within 30d``; ``show SERIAL`` gives the
certificate, its chain up to the root, its status with the revocation reason and time, its
device, and the audit-log entries that name it. Reads only (``fleetid.store.inspection``), or
through the admin API with ``--ca-url`` (``fleetid.cli.remote``): the same documents
(``fleetid.authority.operator_views``).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import Any

from fleetid.cli.output import (
    add_authority_arguments,
    add_json_flag,
    emit,
    inspection,
    parse_span,
)
from fleetid.cli.remote import add_remote_arguments, is_remote, remote_call, remote_list

__all__ = ["register", "seconds"]

_STATUSES = ("valid", "revoked", "expired")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("cert", help="list and inspect issued certificates")
    verbs = parser.add_subparsers(dest="cert_command", metavar="ACTION", required=True)
    listed = verbs.add_parser("list", help="certificates, newest first, filtered")
    add_authority_arguments(listed, required=False)
    listed.add_argument("--device", metavar="ID", help="only this device's")
    listed.add_argument("--status", choices=_STATUSES, help="valid, revoked or expired")
    listed.add_argument(
        "--expiring-within",
        type=parse_span,
        metavar="D",
        help="only unrevoked ones expiring within D (30d, 12h, or seconds)",
    )
    listed.add_argument("--limit", type=int, default=1000, help="at most this many (1000)")
    add_json_flag(listed)
    add_remote_arguments(listed)
    listed.set_defaults(func=_list)
    show = verbs.add_parser("show", help="a certificate: chain, status, device, audit entries")
    show.add_argument("serial", metavar="SERIAL", help="the serial (hex, colons allowed)")
    add_authority_arguments(show, required=False)
    show.add_argument("--pem", action="store_true", help="print the certificate and chain as PEM")
    add_json_flag(show)
    add_remote_arguments(show)
    show.set_defaults(func=_show)


def seconds(time: str | None) -> str:
    """An RFC 3339 time of a document, to the second (``2027-03-01T12:00:00Z``)."""
    return "-" if time is None else time[:19] + "Z"


def _list(args: argparse.Namespace) -> int:
    from fleetid.errors import ConfigError

    if args.limit < 1:
        raise ConfigError("--limit is at least 1")
    within = args.expiring_within
    if is_remote(args):
        summaries = remote_list(
            args,
            "/certificates",
            {
                "device": args.device,
                "status": args.status,
                "expiring_within_seconds": None if within is None else int(within.total_seconds()),
            },
            args.limit,
        )
    else:
        from fleetid.authority.operator_views import as_json, certificate_list
        from fleetid.clock import SystemClock

        now = SystemClock().now()
        with inspection(args) as db:
            summaries = as_json(
                certificate_list(
                    db,
                    now,
                    device_id=args.device,
                    status=args.status,
                    expiring_within=within,
                    limit=args.limit,
                )
            )

    def text() -> Iterator[str]:
        for s in summaries:
            reason = f" ({s['revocation_reason']})" if s["revocation_reason"] else ""
            yield (
                f"{s['serial']}  {s['status']}{reason}  {s['profile']}  "
                f"{s['device_id'] or '-'}  until {seconds(s['not_after'])}"
            )

    emit(args, summaries, text)
    return 0


def _show(args: argparse.Namespace) -> int:
    from urllib.parse import quote

    remote = is_remote(args)
    path = f"/certificates/{quote(args.serial, safe='')}"
    if args.pem:
        if remote:
            from fleetid.cli.remote import remote_response

            pem = remote_response(args, "GET", f"{path}/pem").content
        else:
            from fleetid.authority.operator_views import certificate_pem_chain

            with inspection(args) as db:
                pem = certificate_pem_chain(db, args.serial)
        print(pem.decode(), end="")
        return 0
    if remote:
        document = remote_call(args, "GET", path)
    else:
        from fleetid.authority.operator_views import as_json, certificate_document
        from fleetid.clock import SystemClock

        with inspection(args) as db:
            document = as_json(certificate_document(db, args.serial, SystemClock().now()))

    def text() -> Iterator[str]:
        yield f"serial      {document['serial']}"
        yield f"subject     {document['subject']}"
        yield f"issuer      {document['issuer']}"
        yield f"profile     {document['profile']}"
        yield f"validity    {document['not_before']} .. {document['not_after']}"
        status = document["status"]
        if status == "revoked":
            status += f" ({document['revocation_reason']}) at {document['revoked_at']}"
        yield f"status      {status}"
        yield f"sha256      {document['sha256']}"
        device = document["device"]
        if device is not None:
            yield f"device      {device['device_id']} ({device['status']})"
        for link in document["chain"]:
            yield f"chain       {link['subject']}  serial {link['serial']}"
        for e in document["audit"]:
            yield f"audit       #{e['seq']} {e['logged_at']} {e['kind']}"

    emit(args, document, text)
    return 0
