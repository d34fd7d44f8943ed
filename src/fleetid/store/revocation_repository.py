"""The registry's reads: revocation state at a watermark, as typed records (no SQL above this).

``fleetid.revocation.registry.RevocationRegistry`` is the publishers' API; every statement it
needs is here. The writes (revoke, release, escalate) are the state machine of
``fleetid.store.repositories.Certificates``; this module only reads what they recorded:

* the **watermark** is the ``revocation`` counter: the highest committed revocation sequence;
* a certificate's state **at a watermark** below its latest change is read back from
  ``revocation_events`` (the latest event at or below it);
* large sets (the revoked set, the population) stream in chunks by keyset pagination, so that
  memory stays bounded whatever the fleet size, and a changes query reads one snapshot.

Records are typed: serial numbers are integers, states ``CertificateStatus``, reasons
``RevocationReason``, roles ``CaRole``, flags bools.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Connection, Engine, select

from fleetid.store.schema import (
    SERIAL_HEX_LENGTH,
    CaRole,
    CertificateStatus,
    RevocationReason,
    ca_keys,
    certificates,
    counters,
    revocation_events,
)

__all__ = [
    "CaGeneration",
    "CertificateAt",
    "PopulationRows",
    "RevocationRepository",
]

_WATERMARK_COUNTER: Final = "revocation"


@dataclass(frozen=True, kw_only=True)
class CaGeneration:
    """One CA key generation (fleet root or issuing CA) as the registry needs it."""

    id: int
    role: CaRole
    generation: int
    subject_key_id: bytes
    certificate_der: bytes
    active: bool


@dataclass(frozen=True, kw_only=True, slots=True)
class _StateAt:
    reason: RevocationReason | None
    revoked_at: datetime | None
    sequence: int | None
    invalidity_date: datetime | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class CertificateAt:
    """One certificate and its revocation state at a watermark: ``reason`` None means valid
    (never revoked, or released from hold); a released one keeps the time and sequence of its
    release in ``revoked_at`` and ``sequence``."""

    issuer_id: int
    serial_number: int
    not_after: datetime
    reason: RevocationReason | None
    revoked_at: datetime | None
    sequence: int | None
    invalidity_date: datetime | None


@dataclass(frozen=True, kw_only=True)
class PopulationRows:
    """One chunk of the population a filter covers: parallel tuples, one position per
    certificate, in issuance order."""

    issuer_ids: tuple[int, ...]
    serial_numbers: tuple[int, ...]
    issued_at: tuple[datetime, ...]
    revoked: tuple[bool, ...]


_COLUMNS = (
    certificates.c.id,
    certificates.c.serial,
    certificates.c.issuer_id,
    certificates.c.status,
    certificates.c.revocation_reason,
    certificates.c.revoked_at,
    certificates.c.invalidity_date,
    certificates.c.revocation_seq,
    certificates.c.not_after,
)


def _serial_key(serial_number: int) -> str | None:
    """The store's key for a serial (40 hex digits), or None for one it cannot hold."""
    if not 0 < serial_number < 1 << (4 * SERIAL_HEX_LENGTH):
        return None
    return f"{serial_number:0{SERIAL_HEX_LENGTH}x}"


def _reason(text: str | None) -> RevocationReason | None:
    return None if text is None else RevocationReason(text)


def _latest(row: Any) -> CertificateAt:
    """A certificate as its row's own columns hold it: at its latest change."""
    revoked = row.revocation_seq is not None and row.status == CertificateStatus.REVOKED
    return CertificateAt(
        issuer_id=row.issuer_id,
        serial_number=int(row.serial, 16),
        not_after=row.not_after,
        reason=_reason(row.revocation_reason) if revoked else None,
        revoked_at=row.revoked_at,
        sequence=row.revocation_seq,
        invalidity_date=row.invalidity_date,
    )


def _at(row: Any, state: _StateAt) -> CertificateAt:
    """A certificate as it was at a watermark below its latest change."""
    return CertificateAt(
        issuer_id=row.issuer_id,
        serial_number=int(row.serial, 16),
        not_after=row.not_after,
        reason=state.reason,
        revoked_at=state.revoked_at,
        sequence=state.sequence,
        invalidity_date=state.invalidity_date,
    )


def _past_states(
    connection: Connection, certificate_ids: Sequence[int], watermark: int
) -> dict[int, _StateAt]:
    """The state at ``watermark`` of certificates changed after it: the latest event ≤ it."""
    found = {i: _StateAt(reason=None, revoked_at=None, sequence=None) for i in certificate_ids}
    if certificate_ids:
        for event in connection.execute(
            select(revocation_events)
            .where(
                revocation_events.c.certificate_id.in_(certificate_ids),
                revocation_events.c.sequence <= watermark,
            )
            .order_by(revocation_events.c.sequence)
        ):
            reason = RevocationReason(event.reason)
            found[event.certificate_id] = _StateAt(
                reason=None if reason is RevocationReason.REMOVE_FROM_CRL else reason,
                revoked_at=event.revoked_at,
                sequence=event.sequence,
                invalidity_date=event.invalidity_date,
            )
    return found


def _watermark(connection: Connection) -> int:
    value = connection.execute(
        select(counters.c.value).where(counters.c.name == _WATERMARK_COUNTER)
    ).scalar_one_or_none()
    return 0 if value is None else int(value)


class RevocationRepository:
    """Read-only queries over certificates and their revocation history; none takes a write
    lock."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def watermark(self) -> int:
        """The highest committed revocation sequence number (0 when nothing is revoked)."""
        with self._engine.connect() as c:
            return _watermark(c)

    def ca_generations(self, role: CaRole) -> list[CaGeneration]:
        """Every CA key generation of ``role``, oldest first."""
        with self._engine.connect() as c:
            rows = c.execute(
                select(ca_keys).where(ca_keys.c.role == str(role)).order_by(ca_keys.c.generation)
            ).all()
        return [
            CaGeneration(
                id=r.id,
                role=CaRole(r.role),
                generation=r.generation,
                subject_key_id=bytes(r.subject_key_id),
                certificate_der=bytes(r.certificate),
                active=bool(r.active),
            )
            for r in rows
        ]

    def certificate_at(
        self, issuer_id: int, serial_number: int, *, watermark: int | None
    ) -> tuple[int, CertificateAt | None]:
        """(the watermark read at, the certificate at it, or None if ``issuer_id`` never issued
        ``serial_number``); ``watermark`` None means the current one."""
        key = _serial_key(serial_number)
        with self._engine.connect() as c:
            at = _watermark(c) if watermark is None else watermark
            row = (
                None
                if key is None
                else c.execute(
                    select(*_COLUMNS).where(
                        certificates.c.serial == key, certificates.c.issuer_id == issuer_id
                    )
                ).one_or_none()
            )
            if row is None:
                return at, None
            if row.revocation_seq is not None and row.revocation_seq > at:
                return at, _at(row, _past_states(c, [row.id], at)[row.id])
        return at, _latest(row)

    def changed(
        self,
        since: int,
        until: int,
        *,
        issuer_id: int | None,
        unexpired_at: datetime | None,
        chunk_size: int,
    ) -> Iterator[CertificateAt]:
        """Every certificate whose state at ``until`` comes from a change in ``(since, until]``,
        as it is at ``until``: rows whose latest change is in the range (in sequence order, in
        chunks), then rows changed again after ``until`` whose change at or below it is in the
        range. One read snapshot, so no row is seen twice."""

        def scoped(query: Any) -> Any:
            if issuer_id is not None:
                query = query.where(certificates.c.issuer_id == issuer_id)
            if unexpired_at is not None:
                query = query.where(certificates.c.not_after > unexpired_at)
            return query

        with self._snapshot() as c:
            last = since
            while True:
                rows = c.execute(
                    scoped(
                        select(*_COLUMNS)
                        .where(
                            certificates.c.revocation_seq > last,
                            certificates.c.revocation_seq <= until,
                        )
                        .order_by(certificates.c.revocation_seq)
                        .limit(chunk_size)
                    )
                ).all()
                for row in rows:
                    yield _latest(row)
                if len(rows) < chunk_size:
                    break
                last = rows[-1].revocation_seq
            later = c.execute(
                scoped(select(*_COLUMNS).where(certificates.c.revocation_seq > until))
            ).all()
            pasts = _past_states(c, [r.id for r in later], until)
            for row in later:
                past = pasts[row.id]
                if past.sequence is not None and past.sequence > since:
                    yield _at(row, past)

    @contextmanager
    def _snapshot(self) -> Iterator[Connection]:
        """One read transaction whose statements all see the same snapshot (SQLite: a deferred
        transaction in WAL mode; PostgreSQL: REPEATABLE READ)."""
        with self._engine.connect() as c:
            if c.dialect.name == "sqlite":
                with c.begin():
                    c.exec_driver_sql("BEGIN")
                    yield c
            else:
                c = c.execution_options(isolation_level="REPEATABLE READ")
                with c.begin():
                    yield c

    def unexpired_serials(
        self, issuer_id: int, *, unexpired_at: datetime, chunk_size: int
    ) -> Iterator[int]:
        """The serial numbers of ``issuer_id``'s certificates unexpired at ``unexpired_at``, in
        issuance order."""
        last = 0
        while True:
            with self._engine.connect() as c:
                rows = c.execute(
                    select(certificates.c.id, certificates.c.serial)
                    .where(
                        certificates.c.id > last,
                        certificates.c.issuer_id == issuer_id,
                        certificates.c.not_after > unexpired_at,
                    )
                    .order_by(certificates.c.id)
                    .limit(chunk_size)
                ).all()
            for row in rows:
                yield int(row.serial, 16)
            if len(rows) < chunk_size:
                return
            last = rows[-1].id

    def population(
        self,
        *,
        watermark: int,
        issued_until: datetime,
        unexpired_at: datetime,
        chunk_size: int,
    ) -> Iterator[PopulationRows]:
        """Every certificate issued at or before ``issued_until`` and unexpired at
        ``unexpired_at``, with its revoked flag at ``watermark``, in chunks in issuance order
        (keyset pagination on the primary key: one indexed range scan per chunk)."""
        last = 0
        while True:
            with self._engine.connect() as c:
                rows = c.execute(
                    select(
                        certificates.c.id,
                        certificates.c.serial,
                        certificates.c.issuer_id,
                        certificates.c.issued_at,
                        certificates.c.status,
                        certificates.c.revocation_seq,
                    )
                    .where(
                        certificates.c.id > last,
                        certificates.c.issued_at <= issued_until,
                        certificates.c.not_after > unexpired_at,
                    )
                    .order_by(certificates.c.id)
                    .limit(chunk_size)
                ).all()
                pasts = _past_states(
                    c,
                    [
                        r.id
                        for r in rows
                        if r.revocation_seq is not None and r.revocation_seq > watermark
                    ],
                    watermark,
                )
            if rows:
                yield PopulationRows(
                    issuer_ids=tuple(r.issuer_id for r in rows),
                    serial_numbers=tuple(int(r.serial, 16) for r in rows),
                    issued_at=tuple(r.issued_at for r in rows),
                    revoked=tuple(
                        pasts[r.id].reason is not None
                        if r.id in pasts
                        else r.status == CertificateStatus.REVOKED
                        for r in rows
                    ),
                )
            if len(rows) < chunk_size:
                return
            last = rows[-1].id

    def newest_certificate_der(self) -> bytes | None:
        """The DER of the most recently issued certificate, if any (the CRL publisher reads the
        base URL certificates name from it when no public URL is configured)."""
        with self._engine.connect() as c:
            der = c.execute(
                select(certificates.c.der).order_by(certificates.c.id.desc()).limit(1)
            ).scalar_one_or_none()
        return None if der is None else bytes(der)
