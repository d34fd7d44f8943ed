"""What the operator reads about certificates, devices and tokens, as documents: one shape for
``fleetid cert|device|token`` (``--json``, and the text drawn from it) and the admin API
(``fleetid.api.admin``), so the CLI reads the same facts from the database or over HTTPS.

Reads only, through ``fleetid.store.inspection``. Times stay ``datetime`` here; the edges write
them as RFC 3339.
"""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from datetime import datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from fleetid.errors import NotFoundError
from fleetid.store.inspection import CertificateFilter, Inspection, TokenState

__all__ = [
    "as_json",
    "certificate_document",
    "certificate_list",
    "certificate_pem_chain",
    "certificate_summary",
    "device_document",
    "device_list",
    "operator_summary",
    "revocation_document",
    "timeline",
    "token_list",
]


def as_json(value: Any) -> Any:
    """``value`` as JSON types: dataclasses as objects, times as RFC 3339, bytes as hex."""
    if is_dataclass(value) and not isinstance(value, type):
        return {k: as_json(v) for k, v in asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): as_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [as_json(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    return value


def _status(record: Any, now: datetime) -> str:
    if str(record.status) == "revoked":
        return "revoked"
    return "expired" if record.not_after < now else "valid"


def certificate_summary(record: Any, now: datetime) -> dict[str, Any]:
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


def certificate_list(
    db: Inspection,
    now: datetime,
    *,
    device_id: str | None = None,
    status: str | None = None,
    expiring_within: timedelta | None = None,
    limit: int,
    offset: int = 0,
) -> list[dict[str, Any]]:
    rows = db.certificates(
        now=now,
        device_id=device_id,
        status=None if status is None else CertificateFilter(status),
        expiring_within=expiring_within,
        limit=limit,
        offset=offset,
    )
    return [certificate_summary(r, now) for r in rows]


def _chain(db: Inspection, record: Any) -> list[x509.Certificate]:
    """The issuing CA up to a self-signed root, by subject name among the recorded generations."""
    chain = [x509.load_der_x509_certificate(db.issuer(record.issuer_id).certificate)]
    by_subject = {g.subject: g for g in db.ca_generations() if g.role == "root"}
    top = chain[-1]
    while top.issuer != top.subject and top.issuer.rfc4514_string() in by_subject:
        top = x509.load_der_x509_certificate(by_subject[top.issuer.rfc4514_string()].certificate)
        chain.append(top)
    return chain


def _require_certificate(db: Inspection, serial: str) -> Any:
    record = db.certificate(serial)
    if record is None:
        raise NotFoundError(f"this authority issued no certificate {serial}")
    return record


def certificate_pem_chain(db: Inspection, serial: str) -> bytes:
    """The certificate then its chain up to the root, as PEM (``cert show --pem``)."""
    record = _require_certificate(db, serial)
    certificate = x509.load_der_x509_certificate(record.der)
    return b"".join(
        c.public_bytes(serialization.Encoding.PEM) for c in (certificate, *_chain(db, record))
    )


def certificate_document(db: Inspection, serial: str, now: datetime) -> dict[str, Any]:
    """A certificate: its summary, fingerprint, chain, device and the audit entries naming it."""
    record = _require_certificate(db, serial)
    device = None if record.device_id is None else db.device(record.device_id)
    entries = db.audit_entries(serials=[record.serial])
    certificate = x509.load_der_x509_certificate(record.der)
    return certificate_summary(record, now) | {
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
            for c in _chain(db, record)
        ],
        "device": None
        if device is None
        else {"device_id": device.device_id, "status": device.status},
        "audit": [
            {"seq": e.seq, "logged_at": e.logged_at, "kind": e.kind, "body": e.body}
            for e in entries
        ],
    }


def device_list(
    db: Inspection, *, status: str | None = None, limit: int, offset: int = 0
) -> list[dict[str, Any]]:
    counts = db.certificate_counts()
    return [
        {
            "device_id": d.device_id,
            "status": d.status,
            "provisioner": d.provisioner,
            "idevid_serial": d.idevid_serial,
            "certificates": counts.get(d.device_id, 0),
            "updated_at": d.updated_at,
        }
        for d in db.devices(status=status, limit=limit, offset=offset)
    ]


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


def device_document(db: Inspection, device_id: str, now: datetime) -> dict[str, Any]:
    """A device's lifecycle timeline, certificates and the audit entries naming it."""
    device = db.device(device_id)
    if device is None:
        raise NotFoundError(f"this authority knows no device {device_id!r}")
    certificates = db.certificates(now=now, device_id=device.device_id, limit=10_000)
    tokens = db.tokens(now=now, device_id=device.device_id)
    idevid = None if device.idevid_serial is None else db.idevid(device.idevid_serial)
    serials = [c.serial for c in certificates]
    if device.idevid_serial is not None:
        serials.append(device.idevid_serial)
    entries = db.audit_entries(serials=serials, device_id=device.device_id)
    minted = None if idevid is None else x509.load_der_x509_certificate(idevid).not_valid_before_utc
    return {
        "device_id": device.device_id,
        "status": device.status,
        "provisioner": device.provisioner,
        "idevid_serial": device.idevid_serial,
        "created_at": device.created_at,
        "timeline": timeline(certificates, tokens, minted),
        "certificates": [certificate_summary(c, now) for c in certificates],
        "audit": [
            {"seq": e.seq, "logged_at": e.logged_at, "kind": e.kind, "serial": e.serial}
            for e in entries
        ],
    }


def token_list(
    db: Inspection,
    now: datetime,
    *,
    device_id: str | None = None,
    state: str | None = None,
    limit: int,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Tokens, newest first, never their secrets (only digests are stored)."""
    tokens = db.tokens(
        now=now,
        device_id=device_id,
        state=None if state is None else TokenState(state),
        limit=limit,
        offset=offset,
    )

    def token_state(token: Any) -> str:
        if token.used_at is not None:
            return "used"
        return "expired" if token.expires_at <= now else "unused"

    return [
        {
            "username": t.username,
            "device_id": t.device_id,
            "state": token_state(t),
            "created_at": t.created_at,
            "expires_at": t.expires_at,
            "used_at": t.used_at,
        }
        for t in tokens
    ]


def operator_summary(credential: Any) -> dict[str, Any]:
    """An operator credential as ``fleetid operator list`` and ``GET /admin/operators`` show it
    (its certificate only: the key was never kept)."""
    return {
        "serial": credential.serial,
        "name": credential.name,
        "role": credential.role,
        "issued_at": credential.issued_at,
        "not_after": credential.not_after,
        "revoked_at": credential.revoked_at,
        "revoked_by": credential.revoked_by,
    }


def revocation_document(revocation: Any) -> dict[str, Any]:
    """A revocation, release or escalation as ``fleetid revoke`` and the admin API answer it."""
    return {
        "serial": revocation.serial,
        "reason": str(revocation.reason),
        "revoked_at": revocation.revoked_at,
        "sequence": revocation.sequence,
    }
