"""The one source of truth for revocation: what was revoked, when, why, and in which order.

Every change of a certificate's revocation state is recorded once, in one transaction, by the
state machine in ``fleetid.store.repositories.Certificates`` (RFC 5280 §5.3.1): ``revoke`` (any
reason but removeFromCRL, which only delta CRLs carry), ``release`` (a certificateHold only: the
certificate is valid again) and ``escalate`` (hold to any reason, any reason to a compromise;
never back). Writers reach it through :meth:`RevocationRegistry.revoke` / ``release`` /
``escalate``, ``fleetid revoke`` or the lifecycle service; no channel re-implements it. Each
change bumps the authority-wide counter ``revocation`` under a row lock, the certificate row takes
that value as its ``revocation_seq`` and the change is appended to ``revocation_events``. Because
the counter row stays locked until the transaction commits, changes commit in sequence order:
once sequence ``W`` is visible, so is every sequence below it. That makes ``W`` a *watermark*:
"the registry at W" is every change with a sequence ≤ W, and it never changes afterwards (a
certificate changed again after W is read at W from its history).

Every published artefact (OCSP response, full or delta CRL, offline filter) is derived from the
registry at a watermark and carries it, so two artefacts at the same watermark must agree about
every certificate (``tests/unit/test_registry.py`` proves it for the three channels).

The publishers' API (read-only; none of it takes a write lock):

* :meth:`RevocationRegistry.watermark` — the current watermark (0: nothing revoked yet);
* :meth:`RevocationRegistry.issuers` — the issuing CAs whose certificates the registry knows;
* :meth:`RevocationRegistry.status` — one certificate at a watermark (OCSP);
* :meth:`RevocationRegistry.revoked` — the revoked set at a watermark, streamed (full CRLs);
* :meth:`RevocationRegistry.changes` — certificates whose state changed with
  ``since < sequence ≤ until``, at ``until``; a released one with the reason removeFromCRL
  (deltas, OCSP re-signing);
* :meth:`RevocationRegistry.unexpired` — one issuer's unexpired serials (OCSP pre-signing);
* :meth:`RevocationRegistry.population` — every unexpired certificate issued up to a time, as
  16-byte ``fleetid.revocation.filter.certificate_id`` keys with issued-at and the revoked flag at
  a watermark, in chunks (the filter builder; 10 M rows stream in bounded memory).

Certificate ids are ``SHA-256(issuer subject key id ‖ serial as 20 octets)[:16]``, the issuer key
id being the issuing CA's subjectKeyIdentifier as recorded in ``ca_keys`` (the value end-entity
certificates carry in their authorityKeyIdentifier).
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from cryptography import x509
from sqlalchemy import Connection, select

from fleetid.errors import NotFoundError
from fleetid.store.repositories import (
    REMOVE_FROM_CRL,
    Revocation,
    Store,
    normalise_serial,
    revocation_reason,
)
from fleetid.store.schema import (
    CaRole,
    CertificateStatus,
    ca_keys,
    certificates,
    counters,
    revocation_events,
)

__all__ = [
    "CERTIFICATE_ID_SIZE",
    "REASON_FLAGS",
    "CertificateState",
    "IssuerRecord",
    "PopulationChunk",
    "RevocationRegistry",
    "RevokedEntry",
    "StatusRecord",
    "certificate_id",
]

CERTIFICATE_ID_SIZE: Final = 16
_SERIAL_OCTETS: Final = 20  # RFC 5280 §4.1.2.2
_DEFAULT_CHUNK: Final = 100_000

#: The pyca flag of each RFC 5280 §5.3.1 reason name the registry records, for CRL entries and
#: OCSP revocationReason. ``unspecified`` is absent: both leave the reason out for it.
REASON_FLAGS: Final[Mapping[str, x509.ReasonFlags]] = {
    "keyCompromise": x509.ReasonFlags.key_compromise,
    "cACompromise": x509.ReasonFlags.ca_compromise,
    "affiliationChanged": x509.ReasonFlags.affiliation_changed,
    "superseded": x509.ReasonFlags.superseded,
    "cessationOfOperation": x509.ReasonFlags.cessation_of_operation,
    "certificateHold": x509.ReasonFlags.certificate_hold,
    "removeFromCRL": x509.ReasonFlags.remove_from_crl,
    "privilegeWithdrawn": x509.ReasonFlags.privilege_withdrawn,
    "aACompromise": x509.ReasonFlags.aa_compromise,
}


def certificate_id(issuer_key_id: bytes, serial_number: int) -> bytes:
    """``SHA-256(issuer_key_id ‖ serial as 20 big-endian octets)[:16]``.

    Byte for byte the key ``fleetid.revocation.filter.certificate_id`` computes (tested); it is
    repeated here so that the registry does not import the filter builder's numpy.
    """
    if not issuer_key_id:
        raise ValueError("issuer key id is empty")
    if not 0 < serial_number < 1 << (8 * _SERIAL_OCTETS):
        raise ValueError("serial number must be positive and at most 20 octets (RFC 5280)")
    digest = hashlib.sha256(issuer_key_id + serial_number.to_bytes(_SERIAL_OCTETS, "big"))
    return digest.digest()[:CERTIFICATE_ID_SIZE]


class CertificateState(enum.StrEnum):
    """A certificate's status at a watermark, in RFC 6960 §2.2 terms."""

    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"  # not issued by this issuer, as far as the registry knows


@dataclass(frozen=True, kw_only=True)
class IssuerRecord:
    """An issuing CA generation: the key the registry's certificate ids are derived from."""

    id: int
    generation: int
    subject_key_id: bytes
    certificate_der: bytes
    active: bool

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.certificate_der)


@dataclass(frozen=True, kw_only=True)
class RevokedEntry:
    """One revoked certificate as publishers need it."""

    issuer_id: int
    serial_number: int
    reason: str  # RFC 5280 §5.3.1 name
    revoked_at: datetime
    sequence: int
    not_after: datetime
    invalidity_date: datetime | None = None  # RFC 5280 §5.3.2, when the operator gave one

    @property
    def serial_hex(self) -> str:
        return f"{self.serial_number:0{2 * _SERIAL_OCTETS}x}"


@dataclass(frozen=True, kw_only=True)
class StatusRecord:
    """One certificate at one watermark. ``revoked_at``/``reason``/``sequence`` only if revoked."""

    state: CertificateState
    watermark: int
    issuer_id: int
    serial_number: int
    not_after: datetime | None = None
    revoked_at: datetime | None = None
    reason: str | None = None
    sequence: int | None = None


@dataclass(frozen=True, kw_only=True)
class PopulationChunk:
    """Parallel tuples, one position per certificate, in issuance (row id) order."""

    certificate_ids: tuple[bytes, ...]
    issued_at: tuple[datetime, ...]
    revoked: tuple[bool, ...]

    def __len__(self) -> int:
        return len(self.certificate_ids)


def _entry(row: Any) -> RevokedEntry:
    return RevokedEntry(
        issuer_id=row.issuer_id,
        serial_number=int(row.serial, 16),
        reason=row.revocation_reason or REMOVE_FROM_CRL,  # no reason: released from hold
        revoked_at=row.revoked_at,
        sequence=row.revocation_seq,
        not_after=row.not_after,
        invalidity_date=row.invalidity_date,
    )


_REVOKED_COLUMNS = (
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


@dataclass(frozen=True)
class _Past:
    """A certificate's state at a watermark below its latest change (from ``revocation_events``)."""

    reason: str | None  # None: valid (never revoked, or released)
    revoked_at: datetime | None
    sequence: int | None
    invalidity_date: datetime | None = None


def _past_states(
    connection: Connection, certificate_ids: Sequence[int], watermark: int
) -> dict[int, _Past]:
    """The state at ``watermark`` of certificates changed after it: the latest event ≤ it."""
    found = {i: _Past(None, None, None) for i in certificate_ids}
    if certificate_ids:
        for event in connection.execute(
            select(revocation_events)
            .where(
                revocation_events.c.certificate_id.in_(certificate_ids),
                revocation_events.c.sequence <= watermark,
            )
            .order_by(revocation_events.c.sequence)
        ):
            released = event.reason == REMOVE_FROM_CRL
            found[event.certificate_id] = _Past(
                None if released else event.reason,
                event.revoked_at,
                event.sequence,
                event.invalidity_date,
            )
    return found


def _past_entry(row: Any, past: _Past) -> RevokedEntry:
    assert past.revoked_at is not None and past.sequence is not None  # noqa: S101 - an event
    return RevokedEntry(
        issuer_id=row.issuer_id,
        serial_number=int(row.serial, 16),
        reason=past.reason or REMOVE_FROM_CRL,
        revoked_at=past.revoked_at,
        sequence=past.sequence,
        not_after=row.not_after,
        invalidity_date=past.invalidity_date,
    )


class RevocationRegistry:
    """Read access for publishers, and the one write path, over the authority's ``Store``."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._engine = store.engine

    # -- writing -------------------------------------------------------------------------------

    def revoke(
        self, serial_hex: str, reason: str, *, now: datetime, superseded_by: int | None = None
    ) -> Revocation:
        """Record one revocation (one transaction); returns it with its sequence number."""
        with self._store.transaction() as tx:
            return tx.certificates.revoke(
                serial_hex, revocation_reason(reason), now, superseded_by=superseded_by
            )

    def release(self, serial_hex: str, *, now: datetime) -> Revocation:
        """Release a certificate from hold (one transaction): good again on every channel."""
        with self._store.transaction() as tx:
            return tx.certificates.release(serial_hex, now)

    def escalate(
        self,
        serial_hex: str,
        reason: str,
        *,
        now: datetime,
        invalidity_date: datetime | None = None,
    ) -> Revocation:
        """Escalate a revoked certificate's reason (one transaction), on every channel."""
        with self._store.transaction() as tx:
            return tx.certificates.escalate(
                serial_hex, revocation_reason(reason), now, invalidity_date=invalidity_date
            )

    # -- reading -------------------------------------------------------------------------------

    def watermark(self) -> int:
        """The highest committed revocation sequence number (0 when nothing is revoked)."""
        with self._engine.connect() as c:
            return _watermark(c)

    def issuers(self) -> list[IssuerRecord]:
        """Every issuing-CA generation, oldest first."""
        return self._ca_generations(CaRole.ISSUING)

    def roots(self) -> list[IssuerRecord]:
        """Every fleet-root generation, oldest first (the issuers of the root CRLs)."""
        return self._ca_generations(CaRole.ROOT)

    def _ca_generations(self, role: CaRole) -> list[IssuerRecord]:
        with self._engine.connect() as c:
            rows = c.execute(
                select(ca_keys).where(ca_keys.c.role == str(role)).order_by(ca_keys.c.generation)
            ).all()
        return [
            IssuerRecord(
                id=r.id,
                generation=r.generation,
                subject_key_id=bytes(r.subject_key_id),
                certificate_der=bytes(r.certificate),
                active=bool(r.active),
            )
            for r in rows
        ]

    def status(
        self, issuer_id: int, serial_number: int, *, watermark: int | None = None
    ) -> StatusRecord:
        """The status of one certificate at ``watermark`` (default: now) — OCSP's question.

        A revocation with a sequence above the watermark did not happen yet at that watermark.
        """
        try:
            key = normalise_serial(f"{serial_number:x}")
        except NotFoundError:
            key = None
        with self._engine.connect() as c:
            at = _watermark(c) if watermark is None else watermark
            row = (
                None
                if key is None
                else c.execute(
                    select(*_REVOKED_COLUMNS).where(
                        certificates.c.serial == key, certificates.c.issuer_id == issuer_id
                    )
                ).one_or_none()
            )
            past = (
                _past_states(c, [row.id], at)[row.id]
                if row is not None and row.revocation_seq is not None and row.revocation_seq > at
                else None
            )
        if row is None:
            return StatusRecord(
                state=CertificateState.UNKNOWN,
                watermark=at,
                issuer_id=issuer_id,
                serial_number=serial_number,
            )
        if past is not None:
            reason, revoked_at, sequence = past.reason, past.revoked_at, past.sequence
        elif row.status == CertificateStatus.REVOKED:
            reason, revoked_at, sequence = row.revocation_reason, row.revoked_at, row.revocation_seq
        else:
            reason = None
        if reason is None:
            return StatusRecord(
                state=CertificateState.GOOD,
                watermark=at,
                issuer_id=issuer_id,
                serial_number=serial_number,
                not_after=row.not_after,
            )
        return StatusRecord(
            state=CertificateState.REVOKED,
            watermark=at,
            issuer_id=issuer_id,
            serial_number=serial_number,
            not_after=row.not_after,
            revoked_at=revoked_at,
            reason=reason,
            sequence=sequence,
        )

    def revoked(
        self,
        watermark: int,
        *,
        issuer_id: int | None = None,
        unexpired_at: datetime | None = None,
        chunk_size: int = _DEFAULT_CHUNK,
    ) -> Iterator[RevokedEntry]:
        """Every certificate revoked at ``watermark``, streamed in chunks (in sequence order of
        their latest change, then those changed since ``watermark``, as they were at it).

        ``unexpired_at`` drops certificates that expired before it (RFC 5280 §5: a CRL need not
        list an expired certificate). A released certificate is not revoked.
        """
        for entry in self._between(0, watermark, issuer_id, unexpired_at, chunk_size):
            if entry.reason != REMOVE_FROM_CRL:
                yield entry

    def changes(
        self,
        since: int,
        until: int,
        *,
        issuer_id: int | None = None,
        unexpired_at: datetime | None = None,
        chunk_size: int = _DEFAULT_CHUNK,
    ) -> Iterator[RevokedEntry]:
        """Certificates whose revocation state changed with ``since < sequence ≤ until``, as
        they are at ``until``: revoked with their reason, or released (reason removeFromCRL,
        what a delta CRL lists, RFC 5280 §5.3.1)."""
        if since > until:
            raise ValueError(f"changes({since}, {until}): the range runs backwards")
        yield from self._between(since, until, issuer_id, unexpired_at, chunk_size)

    def _between(
        self,
        since: int,
        until: int,
        issuer_id: int | None,
        unexpired_at: datetime | None,
        chunk_size: int,
    ) -> Iterator[RevokedEntry]:
        """Every certificate whose state at ``until`` comes from a change in ``(since, until]``:
        rows whose latest change is in the range, then rows changed again after ``until`` whose
        change at or below it is in the range. One read snapshot, so no row is seen twice."""

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
                        select(*_REVOKED_COLUMNS)
                        .where(
                            certificates.c.revocation_seq > last,
                            certificates.c.revocation_seq <= until,
                        )
                        .order_by(certificates.c.revocation_seq)
                        .limit(chunk_size)
                    )
                ).all()
                for row in rows:
                    yield _entry(row)
                if len(rows) < chunk_size:
                    break
                last = rows[-1].revocation_seq
            later = c.execute(
                scoped(select(*_REVOKED_COLUMNS).where(certificates.c.revocation_seq > until))
            ).all()
            pasts = _past_states(c, [r.id for r in later], until)
            for row in later:
                past = pasts[row.id]
                if past.sequence is not None and past.sequence > since:
                    yield _past_entry(row, past)

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

    def unexpired(
        self, issuer_id: int, *, unexpired_at: datetime, chunk_size: int = _DEFAULT_CHUNK
    ) -> Iterator[int]:
        """The serial numbers of ``issuer_id``'s certificates unexpired at ``unexpired_at``
        (what an OCSP responder pre-signs), in issuance order.
        """
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
        chunk_size: int = _DEFAULT_CHUNK,
    ) -> Iterator[PopulationChunk]:
        """Every certificate issued at or before ``issued_until`` and unexpired at
        ``unexpired_at``, with its revoked flag at ``watermark``: the universe a filter covers.

        Keyset pagination on the primary key, so each chunk is one indexed range scan and memory
        stays bounded whatever the fleet size.
        """
        key_ids = {i.id: i.subject_key_id for i in self.issuers()}
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
                yield PopulationChunk(
                    certificate_ids=tuple(
                        certificate_id(key_ids[r.issuer_id], int(r.serial, 16)) for r in rows
                    ),
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


def _watermark(connection: Connection) -> int:
    value = connection.execute(
        select(counters.c.value).where(counters.c.name == "revocation")
    ).scalar_one_or_none()
    return 0 if value is None else int(value)
