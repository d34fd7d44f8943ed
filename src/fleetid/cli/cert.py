"""``fleetid cert list|show``: the certificates this authority issued, read from its database.

In the shape of ``step certificate inspect`` and ``vault list pki/certs`` (docs/operations.md):
``list`` filters by device, by status (``valid``, ``revoked``, ``expired``: expiry is computed
against the clock, RFC 5280 §4.1.2.5) and by ``--expiring-within 30d``; ``show SERIAL`` gives the
certificate, its chain up to the root, its status with the revocation reason and time, its
device, and the audit-log entries that name it. Reads only (``fleetid.store.inspection``).
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

__all__ = ["certificate_summary", "register"]

_STATUSES = ("valid", "revoked", "expired")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("cert", help="list and inspect issued certificates")
    verbs = parser.add_subparsers(dest="cert_command", metavar="ACTION", required=True)
    listed = verbs.add_parser("list", help="certificates, newest first, filtered")
    add_authority_arguments(listed)
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
    listed.set_defaults(func=_list)
    show = verbs.add_parser("show", help="a certificate: chain, status, device, audit entries")
    show.add_argument("serial", metavar="SERIAL", help="the serial (hex, colons allowed)")
    add_authority_arguments(show)
    show.add_argument("--pem", action="store_true", help="print the certificate and chain as PEM")
    add_json_flag(show)
    show.set_defaults(func=_show)


def _status(record: Any, now: Any) -> str:
    if str(record.status) == "revoked":
        return "revoked"
    return "expired" if record.not_after < now else "valid"


def certificate_summary(record: Any, now: Any) -> dict[str, Any]:
    """One certificate row as the operator reads it (``cert list``, ``device show``)."""
    return {
        "serial": record.serial,
        "device_id": record.device_id,
        "profile": record.profile,
        "status": _status(record, now),
        "subject": record.subject,
        "not_before": record.not_before,
        "not_after": record.not_after,
        "issued_at": record.issued_at,
        "revoked_at": record.revoked_at if str(record.status) == "revoked" else None,
        "revocation_reason": record.revocation_reason,
    }


def _list(args: argparse.Namespace) -> int:
    from fleetid.clock import SystemClock
    from fleetid.errors import ConfigError
    from fleetid.store.inspection import CertificateFilter

    if args.limit < 1:
        raise ConfigError("--limit is at least 1")
    now = SystemClock().now()
    with inspection(args) as db:
        rows = db.certificates(
            now=now,
            device_id=args.device,
            status=None if args.status is None else CertificateFilter(args.status),
            expiring_within=args.expiring_within,
            limit=args.limit,
        )
    summaries = [certificate_summary(r, now) for r in rows]

    def text() -> Iterator[str]:
        for s in summaries:
            until = s["not_after"].isoformat(timespec="seconds")
            reason = f" ({s['revocation_reason']})" if s["revocation_reason"] else ""
            yield (
                f"{s['serial']}  {s['status']}{reason}  {s['profile']}  "
                f"{s['device_id'] or '-'}  until {until}"
            )

    emit(args, summaries, text)
    return 0


def _show(args: argparse.Namespace) -> int:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    from fleetid.clock import SystemClock
    from fleetid.errors import NotFoundError

    now = SystemClock().now()
    with inspection(args) as db:
        record = db.certificate(args.serial)
        if record is None:
            raise NotFoundError(f"this authority issued no certificate {args.serial}")
        issuer = db.issuer(record.issuer_id)
        generations = db.ca_generations()
        device = None if record.device_id is None else db.device(record.device_id)
        entries = db.audit_entries(serials=[record.serial])
    certificate = x509.load_der_x509_certificate(record.der)
    chain = [x509.load_der_x509_certificate(issuer.certificate)]
    # Up to a self-signed root, by subject name among the recorded CA generations.
    by_subject = {g.subject: g for g in generations if g.role == "root"}
    top = chain[-1]
    while top.issuer != top.subject and top.issuer.rfc4514_string() in by_subject:
        top = x509.load_der_x509_certificate(by_subject[top.issuer.rfc4514_string()].certificate)
        chain.append(top)
    if args.pem:
        for cert in (certificate, *chain):
            print(cert.public_bytes(serialization.Encoding.PEM).decode(), end="")
        return 0
    document = certificate_summary(record, now) | {
        "invalidity_date": record.invalidity_date,
        "sha256": certificate.fingerprint(hashes.SHA256()).hex(),
        "issuer": certificate.issuer.rfc4514_string(),
        "chain": [
            {
                "subject": c.subject.rfc4514_string(),
                "serial": f"{c.serial_number:x}",
                "not_after": c.not_valid_after_utc,
                "sha256": c.fingerprint(hashes.SHA256()).hex(),
            }
            for c in chain
        ],
        "device": None
        if device is None
        else {"device_id": device.device_id, "status": device.status},
        "audit": [
            {"seq": e.seq, "logged_at": e.logged_at, "kind": e.kind, "body": e.body}
            for e in entries
        ],
    }

    def text() -> Iterator[str]:
        yield f"serial      {document['serial']}"
        yield f"subject     {document['subject']}"
        yield f"issuer      {document['issuer']}"
        yield f"profile     {document['profile']}"
        yield f"validity    {record.not_before.isoformat()} .. {record.not_after.isoformat()}"
        status = document["status"]
        if status == "revoked":
            status += f" ({record.revocation_reason}) at {record.revoked_at.isoformat()}"  # type: ignore[union-attr]
        yield f"status      {status}"
        yield f"sha256      {document['sha256']}"
        if device is not None:
            yield f"device      {device.device_id} ({device.status})"
        for link in document["chain"]:
            yield f"chain       {link['subject']}  serial {link['serial']}"
        for e in entries:
            yield f"audit       #{e.seq} {e.logged_at} {e.kind}"

    emit(args, document, text)
    return 0
