"""``fleetid device list`` and ``fleetid device show ID``: the authority's view of its devices.

``show`` draws a device's lifecycle timeline (docs/operations.md) from what the authority
recorded: minted (the IDevID's notBefore, from the imported line manifest), each enrolment token,
enrolled (its first certificate), each refresh (a certificate for the same key) and re-key (a
certificate for a new key), each revocation; then the audit-log entries naming the device.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from fleetid.cli.output import add_authority_arguments, add_json_flag, emit, inspection

__all__ = ["register_into", "timeline"]

_DEVICE_STATUSES = ("pending", "enrolled", "revoked", "transferred")


def register_into(verbs: Any) -> None:
    """Add ``list`` and ``show`` to the ``fleetid device`` verbs."""
    listed = verbs.add_parser("list", help="the authority's devices, with their certificates")
    add_authority_arguments(listed)
    listed.add_argument("--status", choices=_DEVICE_STATUSES, help="only devices in this state")
    add_json_flag(listed)
    listed.set_defaults(func=_list)
    show = verbs.add_parser("show", help="a device's lifecycle timeline and audit entries")
    show.add_argument("device_id", metavar="ID", help="the device id")
    add_authority_arguments(show)
    add_json_flag(show)
    show.set_defaults(func=_show)


def _list(args: argparse.Namespace) -> int:

    with inspection(args) as db:
        rows = db.devices(status=args.status)
        counts = db.certificate_counts()
    document = [
        {
            "device_id": d.device_id,
            "status": d.status,
            "provisioner": d.provisioner,
            "idevid_serial": d.idevid_serial,
            "certificates": counts.get(d.device_id, 0),
            "updated_at": d.updated_at,
        }
        for d in rows
    ]

    def text() -> Iterator[str]:
        for d in document:
            yield (
                f"{d['device_id']}  {d['status']}  {d['provisioner'] or '-'}  "
                f"{d['certificates']} certificates"
            )

    emit(args, document, text)
    return 0


def timeline(
    certificates: list[Any], tokens: list[Any], minted: datetime | None
) -> list[dict[str, Any]]:
    """The device's events, oldest first: minted, token, enrolled, refresh, re-key, revoked."""
    events: list[dict[str, Any]] = []
    if minted is not None:
        events.append({"at": minted, "event": "minted", "detail": "IDevID issued on the line"})
    for token in tokens:
        events.append({"at": token.created_at, "event": "token", "detail": token.username})
    seen_keys: set[bytes] = set()
    for index, cert in enumerate(sorted(certificates, key=lambda c: (c.issued_at, c.id))):
        if index == 0:
            kind = "enrolled"
        elif cert.public_key_sha256 in seen_keys:
            kind = "refresh"
        else:
            kind = "re-key"
        seen_keys.add(cert.public_key_sha256)
        events.append({"at": cert.issued_at, "event": kind, "detail": cert.serial})
        if str(cert.status) == "revoked":
            events.append(
                {
                    "at": cert.revoked_at,
                    "event": "revoked",
                    "detail": f"{cert.serial} {cert.revocation_reason}",
                }
            )
    return sorted(events, key=lambda e: e["at"])


def _show(args: argparse.Namespace) -> int:
    from cryptography import x509

    from fleetid.cli.cert import certificate_summary
    from fleetid.clock import SystemClock
    from fleetid.errors import NotFoundError

    now = SystemClock().now()
    with inspection(args) as db:
        device = db.device(args.device_id)
        if device is None:
            raise NotFoundError(f"this authority knows no device {args.device_id!r}")
        certificates = db.certificates(now=now, device_id=device.device_id, limit=10_000)
        tokens = db.tokens(now=now, device_id=device.device_id)
        idevid = None if device.idevid_serial is None else db.idevid(device.idevid_serial)
        serials = [c.serial for c in certificates]
        if device.idevid_serial is not None:
            serials.append(device.idevid_serial)
        entries = db.audit_entries(serials=serials, device_id=device.device_id)
    minted = None if idevid is None else x509.load_der_x509_certificate(idevid).not_valid_before_utc
    events = timeline(certificates, tokens, minted)
    document: dict[str, Any] = {
        "device_id": device.device_id,
        "status": device.status,
        "provisioner": device.provisioner,
        "idevid_serial": device.idevid_serial,
        "created_at": device.created_at,
        "timeline": events,
        "certificates": [certificate_summary(c, now) for c in certificates],
        "audit": [
            {"seq": e.seq, "logged_at": e.logged_at, "kind": e.kind, "serial": e.serial}
            for e in entries
        ],
    }

    def text() -> Iterator[str]:
        yield f"device {device.device_id}: {device.status} (provisioner {device.provisioner})"
        if device.idevid_serial:
            yield f"IDevID serial {device.idevid_serial}"
        for event in events:
            at = event["at"].isoformat(timespec="seconds")
            yield f"  {at}  {event['event']:<8} {event['detail']}"
        for e in entries:
            yield f"  audit #{e.seq} {e.logged_at} {e.kind}"

    emit(args, document, text)
    return 0
