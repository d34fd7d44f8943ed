"""The operator's read-only questions of the authority's database (``fleetid cert``,
``fleetid device list|show``, ``fleetid token list``; docs/operations.md).

Reads only: every function takes a ``Connection`` (``Inspection.open`` gives one outside any write
transaction) and never writes. "Expired" is not a stored status: a certificate is expired when its
``notAfter`` has passed and it was not revoked (RFC 5280 §4.1.2.5), so the status filter is
computed against the ``now`` the caller passes.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlalchemy import ColumnElement, Connection, and_, func, or_, select

from fleetid.store.auditlog_table import audit_entries
from fleetid.store.crl_table import crl_publications
from fleetid.store.engine import Engine
from fleetid.store.manifest_table import line_manifest
from fleetid.store.repositories import (
    CaKeyRecord,
    CertificateRecord,
    DeviceRecord,
    TokenRecord,
    normalise_serial,
)
from fleetid.store.schema import (
    CertificateStatus,
    ca_keys,
    certificates,
    devices,
    enrolment_tokens,
)

__all__ = [
    "AuditEntry",
    "CertificateFilter",
    "Inspection",
    "TokenState",
]

DEFAULT_LIMIT: Final = 1000


class CertificateFilter(enum.StrEnum):
    """``fleetid cert list --status``: what an operator asks, not the stored column."""

    VALID = "valid"  # not revoked and not yet expired
    REVOKED = "revoked"
    EXPIRED = "expired"  # not revoked, notAfter passed


class TokenState(enum.StrEnum):
    UNUSED = "unused"
    USED = "used"
    EXPIRED = "expired"  # unused and past its expiry (a revoked token is expired at once)


@dataclass(frozen=True, kw_only=True)
class AuditEntry:
    """One audit-log entry as stored (its leaf hash is ``fleetid audit verify``'s concern)."""

    seq: int
    logged_at: str
    kind: str
    serial: str | None
    body: dict[str, Any]


def _entry(row: Any) -> AuditEntry:
    return AuditEntry(
        seq=int(row.seq),
        logged_at=row.logged_at,
        kind=row.kind,
        serial=row.serial,
        body=json.loads(row.body),
    )


def _like_literal(text: str) -> str:
    """``text`` for a LIKE pattern with ``\\`` as escape: its wildcards match themselves."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class Inspection:
    """The read-only queries of one connection."""

    def __init__(self, connection: Connection) -> None:
        self._c = connection

    @classmethod
    @contextmanager
    def open(cls, engine: Engine) -> Iterator[Inspection]:
        with engine.connect() as connection:
            yield cls(connection)

    # -- certificates ---------------------------------------------------------------------------

    def certificates(
        self,
        *,
        now: datetime,
        device_id: str | None = None,
        status: CertificateFilter | None = None,
        expiring_within: timedelta | None = None,
        limit: int = DEFAULT_LIMIT,
        offset: int = 0,
    ) -> list[CertificateRecord]:
        """Certificates, newest first; ``expiring_within``: unrevoked ones that expire between
        ``now`` and ``now + expiring_within``."""
        conditions: list[ColumnElement[bool]] = []
        if device_id is not None:
            conditions.append(certificates.c.device_id == device_id)
        not_revoked = certificates.c.status == str(CertificateStatus.VALID)
        if status is CertificateFilter.REVOKED:
            conditions.append(certificates.c.status == str(CertificateStatus.REVOKED))
        elif status is CertificateFilter.VALID:
            conditions.append(and_(not_revoked, certificates.c.not_after >= now))
        elif status is CertificateFilter.EXPIRED:
            conditions.append(and_(not_revoked, certificates.c.not_after < now))
        if expiring_within is not None:
            conditions.append(
                and_(
                    not_revoked,
                    certificates.c.not_after >= now,
                    certificates.c.not_after <= now + expiring_within,
                )
            )
        query = (
            select(certificates)
            .where(*conditions)
            .order_by(certificates.c.issued_at.desc(), certificates.c.id.desc())
            .limit(limit)
            .offset(offset)
        )
        return [CertificateRecord(**row._mapping) for row in self._c.execute(query)]

    def certificate(self, serial: str) -> CertificateRecord | None:
        """The certificate of ``serial`` (hex in any case, colons allowed), if issued here."""
        query = select(certificates).where(certificates.c.serial == normalise_serial(serial))
        row = self._c.execute(query).one_or_none()
        return None if row is None else CertificateRecord(**row._mapping)

    def issuer(self, issuer_id: int) -> CaKeyRecord:
        row = self._c.execute(select(ca_keys).where(ca_keys.c.id == issuer_id)).one()
        return CaKeyRecord(**row._mapping)

    def ca_generations(self) -> list[CaKeyRecord]:
        rows = self._c.execute(select(ca_keys).order_by(ca_keys.c.role, ca_keys.c.generation))
        return [CaKeyRecord(**row._mapping) for row in rows]

    # -- devices --------------------------------------------------------------------------------

    def devices(
        self, *, status: str | None = None, limit: int = DEFAULT_LIMIT, offset: int = 0
    ) -> list[DeviceRecord]:
        query = select(devices).order_by(devices.c.device_id).limit(limit).offset(offset)
        if status is not None:
            query = query.where(devices.c.status == status)
        return [DeviceRecord(**row._mapping) for row in self._c.execute(query)]

    def device(self, device_id: str) -> DeviceRecord | None:
        row = self._c.execute(select(devices).where(devices.c.device_id == device_id)).one_or_none()
        return None if row is None else DeviceRecord(**row._mapping)

    def certificate_counts(self) -> dict[str, int]:
        """How many certificates each device holds (any status)."""
        query = select(certificates.c.device_id, func.count()).group_by(certificates.c.device_id)
        return {str(device): int(n) for device, n in self._c.execute(query) if device is not None}

    def device_status_counts(self) -> dict[str, int]:
        """How many devices are in each lifecycle state (the console's overview)."""
        query = select(devices.c.status, func.count()).group_by(devices.c.status)
        return {str(status): int(n) for status, n in self._c.execute(query)}

    def certificate_status_counts(self, now: datetime) -> dict[str, int]:
        """How many certificates are valid, revoked and expired at ``now``."""
        revoked = certificates.c.status == str(CertificateStatus.REVOKED)
        expired = and_(~revoked, certificates.c.not_after < now)
        query = select(
            func.count().filter(revoked),
            func.count().filter(expired),
            func.count(),
        ).select_from(certificates)
        n_revoked, n_expired, total = self._c.execute(query).one()
        return {
            "valid": int(total) - int(n_revoked) - int(n_expired),
            "revoked": int(n_revoked),
            "expired": int(n_expired),
        }

    def idevid(self, serial: str) -> bytes | None:
        """The DER IDevID the imported line manifest lists for a chip serial, if any."""
        query = select(line_manifest.c.idevid).where(line_manifest.c.serial == serial).limit(1)
        found = self._c.execute(query).scalar_one_or_none()
        return None if found is None else bytes(found)

    # -- the audit log --------------------------------------------------------------------------

    def audit_entries(
        self, *, serials: list[str], device_id: str | None = None
    ) -> list[AuditEntry]:
        """The entries naming one of ``serials`` (certificates, or a chip's serial on the line),
        and, with ``device_id``, the authority's entries whose body names that device (its
        tokens); oldest first."""
        conditions: list[ColumnElement[bool]] = []
        if serials:
            conditions.append(audit_entries.c.serial.in_(serials))
        if device_id is not None:
            # Bodies are RFC 8785 canonical JSON: no whitespace, the id as json.dumps writes it.
            named = f'"device_id":{json.dumps(device_id, ensure_ascii=False)}'
            conditions.append(audit_entries.c.body.like(f"%{_like_literal(named)}%", escape="\\"))
        if not conditions:
            return []
        query = select(audit_entries).where(or_(*conditions)).order_by(audit_entries.c.seq)
        return [_entry(row) for row in self._c.execute(query)]

    def latest_audit_entry(self) -> AuditEntry | None:
        row = self._c.execute(
            select(audit_entries).order_by(audit_entries.c.seq.desc()).limit(1)
        ).one_or_none()
        return None if row is None else _entry(row)

    # -- revocation artefacts -------------------------------------------------------------------

    def crl_next_updates(self, issuer_id: int) -> dict[int, datetime]:
        """Per CRL shard of ``issuer_id``: the latest nextUpdate of its published full CRLs."""
        query = (
            select(crl_publications.c.shard, func.max(crl_publications.c.next_update))
            .where(crl_publications.c.issuer_id == issuer_id, crl_publications.c.kind == "full")
            .group_by(crl_publications.c.shard)
        )
        return {int(shard): when for shard, when in self._c.execute(query)}

    # -- enrolment tokens -----------------------------------------------------------------------

    def tokens(
        self,
        *,
        now: datetime,
        device_id: str | None = None,
        state: TokenState | None = None,
        limit: int = DEFAULT_LIMIT,
        offset: int = 0,
    ) -> list[TokenRecord]:
        """Tokens, newest first (their secrets are not stored: only their digests, not shown)."""
        query = select(enrolment_tokens)
        if device_id is not None:
            query = query.where(enrolment_tokens.c.device_id == device_id)
        unused = enrolment_tokens.c.used_at.is_(None)
        if state is TokenState.USED:
            query = query.where(enrolment_tokens.c.used_at.is_not(None))
        elif state is TokenState.UNUSED:
            query = query.where(unused, enrolment_tokens.c.expires_at > now)
        elif state is TokenState.EXPIRED:
            query = query.where(unused, enrolment_tokens.c.expires_at <= now)
        query = (
            query.order_by(enrolment_tokens.c.created_at.desc(), enrolment_tokens.c.username)
            .limit(limit)
            .offset(offset)
        )
        return [TokenRecord(**row._mapping) for row in self._c.execute(query)]
