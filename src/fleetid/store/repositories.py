"""Narrow repositories over the authority's tables: services speak records, never SQL.

``Store.transaction()`` opens one database transaction and hands out ``Repositories`` bound to it;
everything done through them commits together or not at all. Each method is one or two indexed
statements. Single use (tokens, challenges) and revocation are conditional ``UPDATE``s, so two
concurrent requests cannot both win, whatever the database.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Connection, Engine, bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from fleetid.errors import EncodingError, NotFoundError, PolicyError, StoreError
from fleetid.store.event_kinds import AUTHORITY_KINDS, EventKind
from fleetid.store.line_manifest_rows import LineManifest, ManifestRecord
from fleetid.store.migrate import ensure_schema
from fleetid.store.rows import record_from_row
from fleetid.store.schema import (
    SERIAL_HEX_LENGTH,
    CaRole,
    CertificateStatus,
    DeviceStatus,
    RevocationReason,
    ca_keys,
    certificates,
    counters,
    devices,
    enrolment_challenges,
    enrolment_tokens,
    revocation_events,
)
from fleetid.store.writer_lock import WriterLock

__all__ = [
    "ESCALATIONS",
    "HOLD",
    "REMOVE_FROM_CRL",
    "REVOCATION_REASONS",
    "CaEvent",
    "CaKeyRecord",
    "CaKeys",
    "CertificateRecord",
    "Certificates",
    "ChallengeRecord",
    "Challenges",
    "DeviceRecord",
    "Devices",
    "LineManifest",
    "ManifestRecord",
    "NewCaKey",
    "NewCertificate",
    "Repositories",
    "Revocation",
    "Store",
    "TokenRecord",
    "Tokens",
    "normalise_serial",
    "revocation_reason",
]


# --- the revocation state machine (RFC 5280 §5.3.1) --------------------------------------------
#
# valid --revoke(reason)--> revoked(reason); revoked(certificateHold) --release--> valid;
# revoked(r) --escalate(r')--> revoked(r') when r' is in ESCALATIONS[r]. Each transition is one
# conditional UPDATE below (race-free) plus one ``revocation_events`` row, under a new sequence
# number. Every writer (``fleetid revoke``, the lifecycle and enrolment services) goes through
# these methods; the publishers only read the result (``fleetid.revocation.registry``).

HOLD = RevocationReason.CERTIFICATE_HOLD
#: Only ever a delta CRL entry: a release from hold (§5.3.1).
REMOVE_FROM_CRL = RevocationReason.REMOVE_FROM_CRL
#: What a certificate may be revoked for: every §5.3.1 reason but removeFromCRL.
REVOCATION_REASONS = tuple(r for r in RevocationReason if r != REMOVE_FROM_CRL)
_COMPROMISE = frozenset(
    {
        RevocationReason.KEY_COMPROMISE,
        RevocationReason.CA_COMPROMISE,
        RevocationReason.AA_COMPROMISE,
    }
)
#: What an existing revocation's reason may become: a hold may be made permanent with any reason;
#: a permanent reason only escalates to a compromise; a compromise is final (no de-escalation).
ESCALATIONS: dict[RevocationReason, frozenset[RevocationReason]] = {
    HOLD: frozenset(REVOCATION_REASONS) - {HOLD},
    **{r: _COMPROMISE for r in REVOCATION_REASONS if r != HOLD and r not in _COMPROMISE},
    **{r: frozenset() for r in _COMPROMISE},
}


def revocation_reason(name: str) -> RevocationReason:
    """The reason a certificate may be revoked for, by its RFC 5280 §5.3.1 name; ``PolicyError``
    for removeFromCRL (a release, not a reason) and for a name that is not a reason."""
    if name == REMOVE_FROM_CRL:
        raise PolicyError(
            "removeFromCRL is not a revocation reason (RFC 5280 §5.3.1: only delta CRLs carry"
            " it); release a certificate on hold instead"
        )
    try:
        return RevocationReason(name)
    except ValueError:
        raise PolicyError(
            f"{name!r} is not an RFC 5280 §5.3.1 reason; use one of {', '.join(REVOCATION_REASONS)}"
        ) from None


def _invalidity(when: datetime | None, now: datetime) -> datetime | None:
    """An invalidity date (RFC 5280 §5.3.2) is in the past: a compromise not yet happened is not
    known."""
    if when is not None and when > now:
        raise PolicyError(f"the invalidity date {when.isoformat()} is in the future")
    return when


def normalise_serial(text: str) -> str:
    """A serial as the store keys it: 40 lowercase hex digits (``0x``, ``:`` and case tolerated)."""
    digits = text.strip().lower().removeprefix("0x").replace(":", "")
    try:
        value = int(digits, 16)
    except ValueError:
        raise NotFoundError(f"{text!r} is not a hexadecimal serial number") from None
    if not 0 < value < 1 << (8 * SERIAL_HEX_LENGTH // 2):
        raise NotFoundError(f"{text!r} is not a serial this authority issues (1..20 octets)")
    return f"{value:0{SERIAL_HEX_LENGTH}x}"


# --- records -----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class NewCaKey:
    role: CaRole
    generation: int
    hsm_label: str
    subject: str
    subject_key_id: bytes
    not_before: datetime
    not_after: datetime
    active: bool
    certificate: bytes  # DER
    created_at: datetime


@dataclass(frozen=True, kw_only=True)
class CaKeyRecord:
    id: int
    role: CaRole
    generation: int
    hsm_label: str
    subject: str
    subject_key_id: bytes
    not_before: datetime
    not_after: datetime
    active: bool
    certificate: bytes
    created_at: datetime

    def __post_init__(self) -> None:
        # Rows hold the role's name and 0/1: the record holds the enum and a bool.
        object.__setattr__(self, "role", CaRole(self.role))
        object.__setattr__(self, "active", bool(self.active))


@dataclass(frozen=True, kw_only=True)
class DeviceRecord:
    device_id: str
    status: DeviceStatus
    idevid_serial: str | None
    idevid_key_sha256: bytes | None
    provisioner: str | None
    created_at: datetime
    updated_at: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", DeviceStatus(self.status))


@dataclass(frozen=True, kw_only=True)
class NewCertificate:
    serial: str
    issuer_id: int
    device_id: str | None
    profile: str
    subject: str
    public_key_sha256: bytes
    not_before: datetime
    not_after: datetime
    issued_at: datetime
    der: bytes


@dataclass(frozen=True, kw_only=True)
class CertificateRecord:
    id: int
    serial: str
    issuer_id: int
    device_id: str | None
    profile: str
    status: CertificateStatus
    subject: str
    public_key_sha256: bytes
    not_before: datetime
    not_after: datetime
    issued_at: datetime
    revoked_at: datetime | None
    revocation_reason: RevocationReason | None
    invalidity_date: datetime | None
    revocation_seq: int | None
    superseded_by: int | None
    der: bytes

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", CertificateStatus(self.status))
        if self.revocation_reason is not None:
            reason = RevocationReason(self.revocation_reason)
            object.__setattr__(self, "revocation_reason", reason)


@dataclass(frozen=True, kw_only=True)
class Revocation:
    """What ``revoke`` recorded: the publisher's view of one revoked certificate."""

    serial: str
    issuer_id: int
    reason: RevocationReason
    revoked_at: datetime
    sequence: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason", RevocationReason(self.reason))


@dataclass(frozen=True, kw_only=True)
class CaEvent:
    """One authority-side write for the audit log, recorded by the repository that makes it and
    appended in the same transaction (``Store.audit``). Bodies name and hash; never secrets."""

    kind: EventKind  # one of AUTHORITY_KINDS
    serial: str | None  # the certificate's serial (hex), when there is one
    body: dict[str, Any]

    def __post_init__(self) -> None:
        if self.kind not in AUTHORITY_KINDS:
            raise EncodingError(f"no audit event kind for the authority's {self.kind!r}")


def _hex(data: bytes) -> str:
    return data.hex()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, kw_only=True)
class TokenRecord:
    username: str
    device_id: str
    secret_sha256: bytes
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None
    certificate_id: int | None = None


@dataclass(frozen=True, kw_only=True)
class ChallengeRecord:
    nonce: bytes
    device_id: str | None
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None


# --- repositories ------------------------------------------------------------------------------
#
# Statements are built once, with bind parameters, and executed with values: SQLAlchemy then
# skips constructing the statement and its compiled-cache key on every call (about 110 µs of the
# 150 µs a small statement costs). WHERE parameters are prefixed ``w_`` so that they never clash
# with the column names an UPDATE's values are keyed by.

_INSERT = {
    table.name: insert(table)
    for table in (
        ca_keys,
        devices,
        certificates,
        enrolment_tokens,
        enrolment_challenges,
        revocation_events,
    )
}
_CA_KEY_BY_ID = select(ca_keys).where(ca_keys.c.id == bindparam("w_id"))
_ACTIVE_CA_KEY = (
    select(ca_keys)
    .where(ca_keys.c.role == bindparam("w_role"), ca_keys.c.active == 1)
    .order_by(ca_keys.c.generation.desc())
    .limit(1)
)
_DEVICE = select(devices).where(devices.c.device_id == bindparam("w_device_id"))
_UPDATE_DEVICE = update(devices).where(devices.c.device_id == bindparam("w_device_id"))
_CERTIFICATE_BY_ID = select(certificates).where(certificates.c.id == bindparam("w_id"))
_CERTIFICATE_BY_SERIAL = select(certificates).where(certificates.c.serial == bindparam("w_serial"))
_CERTIFICATES_OF_DEVICE = (
    select(certificates)
    .where(certificates.c.device_id == bindparam("w_device_id"))
    .order_by(certificates.c.id)
)
_CERTIFICATES_OF_KEY = (
    select(certificates)
    .where(certificates.c.public_key_sha256 == bindparam("w_key"))
    .order_by(certificates.c.id.desc())
)
_REVOKE = (
    update(certificates)
    .where(
        certificates.c.serial == bindparam("w_serial"),
        certificates.c.status == str(CertificateStatus.VALID),
    )
    .returning(certificates.c.id, certificates.c.issuer_id)
)
_RELEASE = (
    update(certificates)
    .where(
        certificates.c.serial == bindparam("w_serial"),
        certificates.c.status == str(CertificateStatus.REVOKED),
        certificates.c.revocation_reason == HOLD,
    )
    .returning(certificates.c.id, certificates.c.issuer_id)
)
_TOKEN = select(enrolment_tokens).where(enrolment_tokens.c.username == bindparam("w_username"))
_UPDATE_TOKEN = update(enrolment_tokens).where(
    enrolment_tokens.c.username == bindparam("w_username")
)
_CHALLENGE = select(enrolment_challenges).where(
    enrolment_challenges.c.nonce == bindparam("w_nonce")
)
_OUTSTANDING_CHALLENGES = (
    select(func.count())
    .select_from(enrolment_challenges)
    .where(
        enrolment_challenges.c.device_id == bindparam("w_device_id"),
        enrolment_challenges.c.used_at.is_(None),
        enrolment_challenges.c.expires_at > bindparam("w_now"),
    )
)
_PRUNE_CHALLENGES = delete(enrolment_challenges).where(
    enrolment_challenges.c.expires_at <= bindparam("w_now")
)
_NEXT_COUNTER = (
    update(counters)
    .where(counters.c.name == bindparam("w_name"))
    .values(value=counters.c.value + 1)
    .returning(counters.c.value)
)


def _use_once_statement(key: Column[Any], *returning: Column[Any]) -> Any:
    """A single-use, expiring row (token or challenge) spent in one conditional UPDATE: the WHERE
    clause does the check, so two concurrent uses cannot both win; exactly one UPDATE matches the
    row while ``used_at`` is still NULL."""
    table = key.table
    statement = (
        update(table)
        .where(
            key == bindparam("w_key"),
            table.c.used_at.is_(None),
            table.c.expires_at > bindparam("w_now"),
        )
        .values(used_at=bindparam("w_now"))
    )
    return statement.returning(*returning) if returning else statement


_SPEND_TOKEN = _use_once_statement(enrolment_tokens.c.username)
_SPEND_CHALLENGE = _use_once_statement(enrolment_challenges.c.nonce, *enrolment_challenges.c)


class CaKeys:
    def __init__(self, connection: Connection, events: list[CaEvent]) -> None:
        self._c = connection
        self._events = events

    def add(self, key: NewCaKey) -> CaKeyRecord:
        values = {**key.__dict__, "role": str(key.role), "active": int(key.active)}
        try:
            new_id = self._c.execute(_INSERT[ca_keys.name], values).inserted_primary_key
        except IntegrityError as exc:
            raise StoreError(f"CA key {key.role} generation {key.generation} exists") from exc
        assert new_id is not None  # noqa: S101 - INSERT of one row
        self._events.append(
            CaEvent(
                kind=EventKind.CA_KEY,
                serial=None,
                body={
                    "role": str(key.role),
                    "generation": key.generation,
                    "hsm_label": key.hsm_label,
                    "subject": key.subject,
                    "subject_key_id": _hex(key.subject_key_id),
                    "certificate_sha256": _sha256(key.certificate),
                    "not_after": key.not_after.isoformat(),
                },
            )
        )
        return self.by_id(int(new_id[0]))

    def by_id(self, key_id: int) -> CaKeyRecord:
        row = self._c.execute(_CA_KEY_BY_ID, {"w_id": key_id}).one_or_none()
        if row is None:
            raise NotFoundError(f"no CA key with id {key_id}")
        record = record_from_row(CaKeyRecord, row)
        return record

    def active(self, role: CaRole) -> CaKeyRecord:
        """The generation of ``role`` that issues now (the newest active one)."""
        row = self._c.execute(_ACTIVE_CA_KEY, {"w_role": str(role)}).one_or_none()
        if row is None:
            raise NotFoundError(f"no active {role} CA: run `fleetid ca init` first")
        record = record_from_row(CaKeyRecord, row)
        return record

    def all(self) -> list[CaKeyRecord]:
        rows = self._c.execute(select(ca_keys).order_by(ca_keys.c.id)).all()
        return [record_from_row(CaKeyRecord, row) for row in rows]


class Devices:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def get(self, device_id: str) -> DeviceRecord | None:
        row = self._c.execute(_DEVICE, {"w_device_id": device_id}).one_or_none()
        return None if row is None else record_from_row(DeviceRecord, row)

    def require(self, device_id: str) -> DeviceRecord:
        record = self.get(device_id)
        if record is None:
            raise NotFoundError(f"no device {device_id!r}")
        return record

    def add(
        self,
        device_id: str,
        status: DeviceStatus,
        now: datetime,
        *,
        provisioner: str | None,
        idevid_serial: str | None = None,
        idevid_key_sha256: bytes | None = None,
    ) -> DeviceRecord:
        """Record a new device (with the factory identity it enrols with, if it has one)."""
        record = DeviceRecord(
            device_id=device_id,
            status=status,
            idevid_serial=idevid_serial,
            idevid_key_sha256=idevid_key_sha256,
            provisioner=provisioner,
            created_at=now,
            updated_at=now,
        )
        try:
            self._c.execute(_INSERT[devices.name], {**record.__dict__, "status": str(status)})
        except IntegrityError as exc:
            raise StoreError(f"device {device_id!r} exists") from exc
        return record

    def _update(self, device_id: str, values: dict[str, Any]) -> None:
        result = self._c.execute(_UPDATE_DEVICE, {"w_device_id": device_id, **values})
        if result.rowcount != 1:
            raise NotFoundError(f"no device {device_id!r}")

    def set_status(
        self, device_id: str, status: DeviceStatus, now: datetime, *, provisioner: str | None = None
    ) -> None:
        values: dict[str, Any] = {"status": str(status), "updated_at": now}
        if provisioner is not None:
            values["provisioner"] = provisioner
        self._update(device_id, values)

    def bind_idevid(
        self, device_id: str, *, idevid_serial: str, idevid_key_sha256: bytes, now: datetime
    ) -> None:
        """Record the factory identity a device enrolled with (the clone check compares it)."""
        self._update(
            device_id,
            {
                "idevid_serial": idevid_serial,
                "idevid_key_sha256": idevid_key_sha256,
                "updated_at": now,
            },
        )


class Certificates:
    def __init__(self, connection: Connection, events: list[CaEvent]) -> None:
        self._c = connection
        self._events = events

    def add(self, new: NewCertificate) -> CertificateRecord:
        """Record an issued certificate; a known serial is refused by the UNIQUE constraint."""
        values = {**new.__dict__, "status": str(CertificateStatus.VALID)}
        try:
            result = self._c.execute(_INSERT[certificates.name], values)
        except IntegrityError as exc:
            raise StoreError(f"certificate {new.serial} not recorded: {exc.orig}") from exc
        assert result.inserted_primary_key is not None  # noqa: S101 - INSERT of one row
        self._events.append(
            CaEvent(
                kind=EventKind.CA_ISSUANCE,
                serial=new.serial,
                body={
                    "issuer_id": new.issuer_id,
                    "device_id": new.device_id,
                    "profile": new.profile,
                    "subject": new.subject,
                    "public_key_sha256": _hex(new.public_key_sha256),
                    "certificate_sha256": _sha256(new.der),
                    "not_after": new.not_after.isoformat(),
                },
            )
        )
        return CertificateRecord(
            id=int(result.inserted_primary_key[0]),
            revoked_at=None,
            revocation_reason=None,
            invalidity_date=None,
            revocation_seq=None,
            superseded_by=None,
            **values,
        )

    def by_id(self, certificate_id: int) -> CertificateRecord:
        row = self._c.execute(_CERTIFICATE_BY_ID, {"w_id": certificate_id}).one_or_none()
        if row is None:
            raise NotFoundError(f"no certificate with id {certificate_id}")
        record = record_from_row(CertificateRecord, row)
        return record

    def by_serial(self, serial: str) -> CertificateRecord:
        key = normalise_serial(serial)
        row = self._c.execute(_CERTIFICATE_BY_SERIAL, {"w_serial": key}).one_or_none()
        if row is None:
            raise NotFoundError(f"no certificate with serial {key}")
        record = record_from_row(CertificateRecord, row)
        return record

    def for_device(self, device_id: str) -> list[CertificateRecord]:
        rows = self._c.execute(_CERTIFICATES_OF_DEVICE, {"w_device_id": device_id}).all()
        return [record_from_row(CertificateRecord, row) for row in rows]

    def for_public_key(self, public_key_sha256: bytes) -> list[CertificateRecord]:
        """Every certificate issued for one key, newest first."""
        rows = self._c.execute(_CERTIFICATES_OF_KEY, {"w_key": public_key_sha256}).all()
        return [record_from_row(CertificateRecord, row) for row in rows]

    def revoke(
        self,
        serial: str,
        reason: RevocationReason,
        now: datetime,
        *,
        superseded_by: int | None = None,
        invalidity_date: datetime | None = None,
    ) -> Revocation:
        """Mark one valid certificate revoked: one counter bump and one indexed row update."""
        reason = revocation_reason(reason)  # removeFromCRL, or a name from an untyped caller
        key = normalise_serial(serial)
        sequence = _next(self._c, "revocation")
        values: dict[str, Any] = {
            "w_serial": key,
            "status": str(CertificateStatus.REVOKED),
            "revoked_at": now,
            "revocation_reason": str(reason),
            "invalidity_date": _invalidity(invalidity_date, now),
            "revocation_seq": sequence,
        }
        if superseded_by is not None:
            values["superseded_by"] = superseded_by
        row = self._c.execute(_REVOKE, values).one_or_none()
        if row is None:
            existing = self.by_serial(key)  # raises NotFoundError for an unknown serial
            raise PolicyError(
                f"certificate {key} is already revoked ({existing.revocation_reason})"
            )
        return self._recorded(
            EventKind.CA_REVOCATION, key, row, reason, now, sequence, now, invalidity_date
        )

    def supersede(self, serial: str, successor_id: int) -> None:
        """Link a valid certificate to its successor without revoking it (a routine refresh: the
        old one expires); refused if it was superseded already."""
        key = normalise_serial(serial)
        result = self._c.execute(
            update(certificates)
            .where(
                certificates.c.serial == key,
                certificates.c.status == str(CertificateStatus.VALID),
                certificates.c.superseded_by.is_(None),
            )
            .values(superseded_by=successor_id)
        )
        if result.rowcount != 1:
            self.by_serial(key)  # raises NotFoundError for an unknown serial
            raise PolicyError(f"certificate {key} is revoked or was superseded already")

    def release(self, serial: str, now: datetime) -> Revocation:
        """Release a certificate from hold: valid again; delta CRLs list it as removeFromCRL."""
        key = normalise_serial(serial)
        sequence = _next(self._c, "revocation")
        row = self._c.execute(
            _RELEASE,
            {
                "w_serial": key,
                "status": str(CertificateStatus.VALID),
                "revoked_at": now,
                "revocation_reason": None,
                "invalidity_date": None,
                "revocation_seq": sequence,
            },
        ).one_or_none()
        if row is None:
            existing = self.by_serial(key)
            if existing.status == CertificateStatus.VALID:
                raise PolicyError(f"certificate {key} is not revoked: there is no hold to release")
            raise PolicyError(
                f"certificate {key} is revoked for {existing.revocation_reason}, not on hold:"
                " only a certificateHold is released"
            )
        return self._recorded(EventKind.CA_RELEASE, key, row, REMOVE_FROM_CRL, now, sequence, now)

    def escalate(
        self,
        serial: str,
        reason: RevocationReason,
        now: datetime,
        *,
        invalidity_date: datetime | None = None,
    ) -> Revocation:
        """Change a revoked certificate's reason along ``ESCALATIONS`` (the revocation date stays:
        the certificate has been revoked since then), and its invalidity date when one is given
        (RFC 5280 §5.3.2: when the key was compromised, which may precede the revocation)."""
        key = normalise_serial(serial)
        sources = [str(old) for old, targets in ESCALATIONS.items() if reason in targets]
        sequence = _next(self._c, "revocation")
        row = self._c.execute(
            update(certificates)
            .where(
                certificates.c.serial == key,
                certificates.c.status == str(CertificateStatus.REVOKED),
                certificates.c.revocation_reason.in_(sources),
            )
            .values(
                revocation_reason=str(reason),
                revocation_seq=sequence,
                invalidity_date=func.coalesce(
                    bindparam("w_invalidity", type_=certificates.c.invalidity_date.type),
                    certificates.c.invalidity_date,
                ),
            )
            .returning(
                certificates.c.id,
                certificates.c.issuer_id,
                certificates.c.revoked_at,
                certificates.c.invalidity_date,
            ),
            {"w_invalidity": _invalidity(invalidity_date, now)},
        ).one_or_none()
        if row is None:
            existing = self.by_serial(key)
            if existing.status == CertificateStatus.VALID:
                raise PolicyError(f"certificate {key} is not revoked: revoke it instead")
            if existing.revocation_reason == reason:
                raise PolicyError(f"certificate {key} is already revoked ({reason})")
            raise PolicyError(
                f"certificate {key} is revoked for {existing.revocation_reason}, which cannot"
                f" become {reason}: a reason is only escalated (hold to any, any to a compromise)"
            )
        return self._recorded(
            EventKind.CA_ESCALATION,
            key,
            row,
            reason,
            row.revoked_at,
            sequence,
            now,
            row.invalidity_date,
        )

    def _recorded(
        self,
        kind: EventKind,
        serial: str,
        row: Any,
        reason: RevocationReason,
        revoked_at: datetime,
        sequence: int,
        now: datetime,
        invalidity_date: datetime | None = None,
    ) -> Revocation:
        self._c.execute(
            _INSERT[revocation_events.name],
            {
                "sequence": sequence,
                "certificate_id": row.id,
                "reason": str(reason),
                "revoked_at": revoked_at,
                "invalidity_date": invalidity_date,
                "recorded_at": now,
            },
        )
        self._events.append(
            CaEvent(
                kind=kind,
                serial=serial,
                body={
                    "reason": str(reason),
                    "revoked_at": revoked_at.isoformat(),
                    "invalidity_date": invalidity_date.isoformat() if invalidity_date else None,
                    "sequence": sequence,
                },
            )
        )
        return Revocation(
            serial=serial,
            issuer_id=row.issuer_id,
            reason=reason,
            revoked_at=revoked_at,
            sequence=sequence,
        )

    def revoked_since(self, sequence: int, *, limit: int = 10_000) -> list[Revocation]:
        """Changes of revocation state after ``sequence``, in order (``revocation_events``)."""
        events = revocation_events
        rows = self._c.execute(
            select(
                certificates.c.serial,
                certificates.c.issuer_id,
                events.c.reason,
                events.c.revoked_at,
                events.c.sequence,
            )
            .join(certificates, certificates.c.id == events.c.certificate_id)
            .where(events.c.sequence > sequence)
            .order_by(events.c.sequence)
            .limit(limit)
        ).all()
        return [
            Revocation(
                serial=r.serial,
                issuer_id=r.issuer_id,
                reason=r.reason,
                revoked_at=r.revoked_at,
                sequence=r.sequence,
            )
            for r in rows
        ]

    def count(self, *, status: CertificateStatus | None = None) -> int:
        query = select(func.count()).select_from(certificates)
        if status is not None:
            query = query.where(certificates.c.status == str(status))
        return int(self._c.execute(query).scalar_one())


class Tokens:
    def __init__(self, connection: Connection, events: list[CaEvent]) -> None:
        self._c = connection
        self._events = events

    def add(self, token: TokenRecord) -> None:
        try:
            self._c.execute(_INSERT[enrolment_tokens.name], token.__dict__)
        except IntegrityError as exc:
            raise StoreError(f"token user {token.username!r} exists") from exc
        self._events.append(
            CaEvent(
                kind=EventKind.CA_TOKEN,
                serial=None,
                body={
                    "username": token.username,
                    "device_id": token.device_id,
                    "expires_at": token.expires_at.isoformat(),
                },
            )
        )

    def get(self, username: str) -> TokenRecord | None:
        row = self._c.execute(_TOKEN, {"w_username": username}).one_or_none()
        return None if row is None else record_from_row(TokenRecord, row)

    def consume(self, username: str, now: datetime) -> bool:
        """Mark the token used if it is unused and unexpired; False if another use won."""
        result = self._c.execute(_SPEND_TOKEN, {"w_key": username, "w_now": now})
        return result.rowcount == 1

    def bind_certificate(self, username: str, certificate_id: int) -> None:
        self._c.execute(_UPDATE_TOKEN, {"w_username": username, "certificate_id": certificate_id})


class Challenges:
    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def add(self, challenge: ChallengeRecord) -> None:
        self._c.execute(_INSERT[enrolment_challenges.name], challenge.__dict__)

    def get(self, nonce: bytes) -> ChallengeRecord | None:
        row = self._c.execute(_CHALLENGE, {"w_nonce": nonce}).one_or_none()
        return None if row is None else record_from_row(ChallengeRecord, row)

    def spend(self, nonce: bytes, now: datetime) -> ChallengeRecord | None:
        """Mark the challenge used if it is unused and unexpired, and return it (``used_at`` is
        ``now``); ``None`` if it is unknown, used or expired (``get`` tells which)."""
        row = self._c.execute(_SPEND_CHALLENGE, {"w_key": nonce, "w_now": now}).one_or_none()
        return None if row is None else record_from_row(ChallengeRecord, row)

    def consume(self, nonce: bytes, now: datetime) -> bool:
        """Mark the challenge used if it is unused and unexpired; False otherwise."""
        return self.spend(nonce, now) is not None

    def outstanding(self, device_id: str, now: datetime) -> int:
        """How many of ``device_id``'s challenges are unused and unexpired at ``now``."""
        row = self._c.execute(_OUTSTANDING_CHALLENGES, {"w_device_id": device_id, "w_now": now})
        return int(row.scalar_one())

    def prune(self, now: datetime) -> int:
        """Delete every challenge expired at ``now`` (none can be spent any more); how many."""
        return int(self._c.execute(_PRUNE_CHALLENGES, {"w_now": now}).rowcount)


def _next(connection: Connection, name: str) -> int:
    """The next value of a named counter; its row stays locked until the transaction ends."""
    value = connection.execute(_NEXT_COUNTER, {"w_name": name}).scalar_one_or_none()
    if value is None:
        raise StoreError(f"counter {name!r} is missing: the schema is not migrated")
    return int(value)


def _sqlite_writer_lock(engine: Engine) -> WriterLock | None:
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return WriterLock(None)  # in memory (or a URI): this process's threads only
    return WriterLock(Path(database))


def _repositories(connection: Connection) -> Repositories:
    events: list[CaEvent] = []
    return Repositories(
        ca_keys=CaKeys(connection, events),
        devices=Devices(connection),
        certificates=Certificates(connection, events),
        tokens=Tokens(connection, events),
        challenges=Challenges(connection),
        manifest=LineManifest(connection),
        events=events,
        connection=connection,
    )


@dataclass(frozen=True)
class Repositories:
    """The repositories of one transaction."""

    ca_keys: CaKeys
    devices: Devices
    certificates: Certificates
    tokens: Tokens
    challenges: Challenges
    manifest: LineManifest
    events: list[CaEvent]  # what this transaction did, for the audit log (``Store.audit``)
    # The transaction's connection, for the repositories defined in their own store modules.
    connection: Connection


class Store:
    """The authority's database: migrated on first use, used one transaction at a time."""

    def __init__(self, engine: Engine, *, migrate: bool = True) -> None:
        self.engine = engine
        # SQLite has one writer; a writer that finds it busy sleeps and retries, which under a
        # server's load costs far more than the work. Writers queue instead (``WriterLock``).
        self._sqlite_writer = _sqlite_writer_lock(engine)
        self._batch = threading.local()  # the connection of this thread's open batch, if any
        # Appends a transaction's ``CaEvent``s to the audit log inside it (``fleetid.authority``
        # sets it; None: not logged).
        self.audit: Callable[[Connection, list[CaEvent]], None] | None = None
        if migrate:
            ensure_schema(engine)

    @contextmanager
    def transaction(self) -> Iterator[Repositories]:
        """One transaction. On SQLite it is ``BEGIN IMMEDIATE``: Python's sqlite3 would open the
        transaction only at the first write, leaving the reads before it outside; taking the
        write lock at once (waiting out the busy timeout) makes the whole unit atomic.

        Inside ``batch()`` on the same thread it is a SAVEPOINT of the batch's transaction: it
        rolls back alone, and commits with the batch.
        """
        batch: Connection | None = getattr(self._batch, "connection", None)
        if batch is not None:
            yield from self._savepoint(batch)
            return
        with self._writing(), self.engine.begin() as connection:
            if connection.dialect.name == "sqlite":
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            repositories = _repositories(connection)
            yield repositories
            self._audit(connection, repositories.events)

    def _audit(self, connection: Connection, events: list[CaEvent]) -> None:
        """Hand what the transaction did to the audit log, inside it (crash consistency)."""
        if events and self.audit is not None:
            self.audit(connection, events)

    def _savepoint(self, connection: Connection) -> Iterator[Repositories]:
        """A unit of a batch (SQL:2003 savepoints, as SQLite and PostgreSQL name them). Plain
        statements rather than ``begin_nested``, whose bookkeeping costs five times as much (160
        against 30 µs a unit) and buys nothing here: a batch's units run one after another."""
        name = f"fleetid_unit_{self._batch.depth}"
        self._batch.depth += 1
        connection.exec_driver_sql(f"SAVEPOINT {name}")
        repositories = _repositories(connection)
        self._batch.events.append(repositories.events)
        try:
            yield repositories
        except BaseException:
            connection.exec_driver_sql(f"ROLLBACK TO SAVEPOINT {name}")
            connection.exec_driver_sql(f"RELEASE SAVEPOINT {name}")
            raise
        else:
            connection.exec_driver_sql(f"RELEASE SAVEPOINT {name}")
        finally:
            self._batch.depth -= 1
            done = self._batch.events.pop()
        self._batch.events[-1].extend(done)  # kept only if the unit was released

    @contextmanager
    def batch(self) -> Iterator[None]:
        """One transaction around every ``transaction()`` this thread opens until it ends, each of
        them a SAVEPOINT: one commit for many units (``fleetid.store.group_commit``)."""
        if getattr(self._batch, "connection", None) is not None:
            raise StoreError("a batch is already open on this thread")
        with self._writing(), self.engine.begin() as connection:
            if connection.dialect.name == "sqlite":
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            self._batch.connection, self._batch.depth = connection, 0
            self._batch.events = [[]]  # the batch's, then one list per open unit
            try:
                yield
                self._audit(connection, self._batch.events[0])
            finally:
                self._batch.connection = None

    def bulk_insert_certificates(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert many certificate rows in one executemany (benchmarks, imports)."""
        with self.engine.begin() as connection:
            connection.execute(_INSERT[certificates.name], list(rows))

    def _writing(self) -> AbstractContextManager[None]:
        return nullcontext() if self._sqlite_writer is None else self._sqlite_writer.hold()

    def dispose(self) -> None:
        self.engine.dispose()
