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
every certificate (``tests/unit/revocation/test_registry.py`` proves it for the three channels).

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
  16-byte ``fleetid.revocation.filter.format.certificate_id`` keys with issued-at and the revoked
  flag at a watermark, in chunks (the filter builder; 10 M rows stream in bounded memory).

Certificate ids are ``SHA-256(issuer subject key id ‖ serial as 20 octets)[:16]``, the issuer key
id being the issuing CA's subjectKeyIdentifier as recorded in ``ca_keys`` (the value end-entity
certificates carry in their authorityKeyIdentifier).

The statements are ``fleetid.store.revocation_repository``'s; this module maps its typed records
to what the publishers read.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from cryptography import x509

from fleetid.revocation.filter.format import CERT_ID_SIZE, certificate_id
from fleetid.store.repositories import Revocation, Store, revocation_reason
from fleetid.store.revocation_repository import (
    CaGeneration,
    CertificateAt,
    RevocationRepository,
)
from fleetid.store.schema import CaRole, RevocationReason

__all__ = [
    "CERTIFICATE_ID_SIZE",
    "REASON_FLAGS",
    "CertificateState",
    "IssuerRecord",
    "PopulationChunk",
    "RevocationReason",
    "RevocationRegistry",
    "RevokedEntry",
    "StatusRecord",
    "certificate_id",
    "issuer_certificate",
]

CERTIFICATE_ID_SIZE: Final = CERT_ID_SIZE
_SERIAL_OCTETS: Final = 20  # RFC 5280 §4.1.2.2
_DEFAULT_CHUNK: Final = 100_000

#: The pyca flag of each RFC 5280 §5.3.1 reason the registry records, for CRL entries and OCSP
#: revocationReason. ``unspecified`` is absent: both leave the reason out for it.
REASON_FLAGS: Final[Mapping[str, x509.ReasonFlags]] = {
    RevocationReason.KEY_COMPROMISE: x509.ReasonFlags.key_compromise,
    RevocationReason.CA_COMPROMISE: x509.ReasonFlags.ca_compromise,
    RevocationReason.AFFILIATION_CHANGED: x509.ReasonFlags.affiliation_changed,
    RevocationReason.SUPERSEDED: x509.ReasonFlags.superseded,
    RevocationReason.CESSATION_OF_OPERATION: x509.ReasonFlags.cessation_of_operation,
    RevocationReason.CERTIFICATE_HOLD: x509.ReasonFlags.certificate_hold,
    RevocationReason.REMOVE_FROM_CRL: x509.ReasonFlags.remove_from_crl,
    RevocationReason.PRIVILEGE_WITHDRAWN: x509.ReasonFlags.privilege_withdrawn,
    RevocationReason.AA_COMPROMISE: x509.ReasonFlags.aa_compromise,
}


class CertificateState(enum.StrEnum):
    """A certificate's status at a watermark, in RFC 6960 §2.2 terms."""

    GOOD = "good"
    REVOKED = "revoked"
    UNKNOWN = "unknown"  # not issued by this issuer, as far as the registry knows


#: A CA key generation (issuing CA or fleet root): the key certificate ids are derived from.
IssuerRecord = CaGeneration


def issuer_certificate(issuer: IssuerRecord) -> x509.Certificate:
    """The CA certificate of ``issuer``'s generation."""
    return x509.load_der_x509_certificate(issuer.certificate_der)


@dataclass(frozen=True, kw_only=True)
class RevokedEntry:
    """One revoked (or released: reason removeFromCRL) certificate as publishers need it."""

    issuer_id: int
    serial_number: int
    reason: RevocationReason  # RFC 5280 §5.3.1
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
    reason: RevocationReason | None = None
    sequence: int | None = None


@dataclass(frozen=True, kw_only=True)
class PopulationChunk:
    """Parallel tuples, one position per certificate, in issuance (row id) order."""

    certificate_ids: tuple[bytes, ...]
    issued_at: tuple[datetime, ...]
    revoked: tuple[bool, ...]

    def __len__(self) -> int:
        return len(self.certificate_ids)


def _entry(found: CertificateAt) -> RevokedEntry:
    assert found.revoked_at is not None and found.sequence is not None  # noqa: S101 - a change
    return RevokedEntry(
        issuer_id=found.issuer_id,
        serial_number=found.serial_number,
        reason=found.reason or RevocationReason.REMOVE_FROM_CRL,  # none: released from hold
        revoked_at=found.revoked_at,
        sequence=found.sequence,
        not_after=found.not_after,
        invalidity_date=found.invalidity_date,
    )


class RevocationRegistry:
    """Read access for publishers, and the one write path, over the authority's ``Store``."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._reads = RevocationRepository(store.engine)

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
        return self._reads.watermark()

    def issuers(self) -> list[IssuerRecord]:
        """Every issuing-CA generation, oldest first."""
        return list(self._reads.ca_generations(CaRole.ISSUING))

    def roots(self) -> list[IssuerRecord]:
        """Every fleet-root generation, oldest first (the issuers of the root CRLs)."""
        return list(self._reads.ca_generations(CaRole.ROOT))

    def status(
        self, issuer_id: int, serial_number: int, *, watermark: int | None = None
    ) -> StatusRecord:
        """The status of one certificate at ``watermark`` (default: now) — OCSP's question.

        A revocation with a sequence above the watermark did not happen yet at that watermark.
        """
        at, found = self._reads.certificate_at(issuer_id, serial_number, watermark=watermark)
        if found is None:
            return StatusRecord(
                state=CertificateState.UNKNOWN,
                watermark=at,
                issuer_id=issuer_id,
                serial_number=serial_number,
            )
        revoked = found.reason is not None
        return StatusRecord(
            state=CertificateState.REVOKED if revoked else CertificateState.GOOD,
            watermark=at,
            issuer_id=issuer_id,
            serial_number=serial_number,
            not_after=found.not_after,
            revoked_at=found.revoked_at if revoked else None,
            reason=found.reason,
            sequence=found.sequence if revoked else None,
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
        for found in self._reads.changed(
            0, watermark, issuer_id=issuer_id, unexpired_at=unexpired_at, chunk_size=chunk_size
        ):
            if found.reason is not None:
                yield _entry(found)

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
        for found in self._reads.changed(
            since, until, issuer_id=issuer_id, unexpired_at=unexpired_at, chunk_size=chunk_size
        ):
            yield _entry(found)

    def unexpired(
        self, issuer_id: int, *, unexpired_at: datetime, chunk_size: int = _DEFAULT_CHUNK
    ) -> Iterator[int]:
        """The serial numbers of ``issuer_id``'s certificates unexpired at ``unexpired_at``
        (what an OCSP responder pre-signs), in issuance order.
        """
        return self._reads.unexpired_serials(
            issuer_id, unexpired_at=unexpired_at, chunk_size=chunk_size
        )

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
        for rows in self._reads.population(
            watermark=watermark,
            issued_until=issued_until,
            unexpired_at=unexpired_at,
            chunk_size=chunk_size,
        ):
            yield PopulationChunk(
                certificate_ids=tuple(
                    certificate_id(key_ids[issuer], serial)
                    for issuer, serial in zip(rows.issuer_ids, rows.serial_numbers, strict=True)
                ),
                issued_at=rows.issued_at,
                revoked=rows.revoked,
            )

    def newest_certificate_der(self) -> bytes | None:
        """The DER of the most recently issued certificate, if any."""
        return self._reads.newest_certificate_der()
