"""The V2X authorities' repositories: what the EA, the AA and the Root CA keep, as records.

One repository per operator, each over that operator's own engine and naming only its own tables
(``fleetid.store.v2x_tables``): ``EnrolmentRecords`` (the EA), ``AuthorizationRecords`` (the AA),
``RootCaRecords`` (the Root CA). Opening one migrates its database to the head revision (the V2X
tables are revision 0005). Each method is one short transaction of prebuilt statements; flags are
``bool``, roles and publication kinds are enums, times are Time32 seconds as the certificates
carry them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Engine, Table, bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from fleetid.errors import NotFoundError, StoreError
from fleetid.store.migrate import ensure_schema
from fleetid.store.v2x_tables import (
    PublicationKind,
    V2xCaRole,
    aa_counters,
    aa_issued_tickets,
    aa_seen_requests,
    ca_certificates,
    ca_publications,
    ea_canonical_keys,
    ea_counters,
    ea_enrolment_credentials,
    ea_seen_requests,
)

__all__ = [
    "AuthorizationRecords",
    "CaCertificateRecord",
    "CanonicalKeyRecord",
    "Counters",
    "EnrolmentCredentialRecord",
    "EnrolmentRecords",
    "Publication",
    "PublicationKind",
    "RootCaRecords",
    "SeenRequests",
    "V2xCaRole",
]


# --- records -----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class CanonicalKeyRecord:
    """A vehicle's canonical key as the EA registered it."""

    its_id: bytes
    curve: str  # the 1609.2 curve name (``fleetid.crypto.v2xkeys.CURVES``)
    public_key: bytes  # SEC 1 compressed point
    active: bool


@dataclass(frozen=True, kw_only=True)
class EnrolmentCredentialRecord:
    """An EC the EA issued."""

    ec_id: bytes  # HashedId8
    its_id: bytes
    certificate: bytes  # COER
    not_after: int  # Time32
    revoked: bool
    superseded: bool


@dataclass(frozen=True, kw_only=True)
class CaCertificateRecord:
    """A certificate of the Root CA's hierarchy (its own, an EA's or an AA's)."""

    cert_id: bytes  # HashedId8
    role: V2xCaRole
    name: str
    certificate: bytes  # COER
    access_point: str | None
    revoked: bool


@dataclass(frozen=True, kw_only=True)
class Publication:
    """A signed CTL or CRL as the Root CA published it."""

    kind: PublicationKind
    sequence: int
    encoded: bytes


# --- what the EA and the AA share ---------------------------------------------------------------


class SeenRequests:
    """The hashes of recently seen requests of one authority (replay detection)."""

    def __init__(self, engine: Engine, table: Table) -> None:
        self._engine = engine
        self._prune = delete(table).where(table.c.expires < bindparam("w_now"))
        self._insert = insert(table)

    def remember(self, request_hash: bytes, *, now: int, expires: int) -> bool:
        """Record a request hash until ``expires`` (Time32), dropping those expired at ``now``;
        False if the hash is on record already (a replay), True if it was new."""
        try:
            with self._engine.begin() as conn:
                conn.execute(self._prune, {"w_now": now})
                conn.execute(self._insert, {"request_hash": request_hash, "expires": expires})
        except IntegrityError:
            return False  # the whole transaction rolled back: nothing changed
        return True


class Counters:
    """Aggregate counters of one authority (no identifiers, no times): ``fleetid v2x stats``."""

    def __init__(self, engine: Engine, table: Table) -> None:
        self._engine = engine
        self._bump = (
            update(table).where(table.c.name == bindparam("w_name")).values(value=table.c.value + 1)
        )
        self._insert = insert(table)
        self._all = select(table.c.name, table.c.value)

    def add(self, name: str) -> None:
        """Count one more ``name``."""
        with self._engine.begin() as conn:
            if conn.execute(self._bump, {"w_name": name}).rowcount == 0:
                conn.execute(self._insert, {"name": name, "value": 1})

    def all(self) -> dict[str, int]:
        with self._engine.connect() as conn:
            rows = conn.execute(self._all).all()
        return {str(name): int(value) for name, value in rows}


def _count(engine: Engine, table: Table, *where: object) -> int:
    query = select(func.count()).select_from(table)
    if where:
        query = query.where(*where)  # type: ignore[arg-type]
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


# --- the EA -------------------------------------------------------------------------------------

_CANONICAL_KEY = select(ea_canonical_keys).where(ea_canonical_keys.c.its_id == bindparam("w_id"))
_EC = select(ea_enrolment_credentials).where(ea_enrolment_credentials.c.ec_id == bindparam("w_id"))
_SUPERSEDE_ECS = (
    update(ea_enrolment_credentials)
    .where(ea_enrolment_credentials.c.its_id == bindparam("w_its_id"))
    .values(superseded=True)
)


class _AuthorityRecords:
    """An authority's database, migrated, with its seen requests and counters."""

    def __init__(self, engine: Engine, seen: Table, counters: Table) -> None:
        ensure_schema(engine)
        self._engine = engine
        self.seen_requests = SeenRequests(engine, seen)
        self.counters = Counters(engine, counters)


class EnrolmentRecords(_AuthorityRecords):
    """The EA's database: canonical keys, the ECs it issued, seen requests, counters."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine, ea_seen_requests, ea_counters)

    def add_canonical_key(self, its_id: bytes, *, curve: str, public_key: bytes) -> None:
        """Register an active canonical key; ``StoreError`` if ``its_id`` has one already."""
        try:
            with self._engine.begin() as conn:
                conn.execute(
                    insert(ea_canonical_keys),
                    {"its_id": its_id, "curve": curve, "public_key": public_key, "active": True},
                )
        except IntegrityError:
            raise StoreError(f"a canonical key is on record for itsId {its_id.hex()}") from None

    def canonical_key(self, its_id: bytes) -> CanonicalKeyRecord | None:
        with self._engine.connect() as conn:
            row = conn.execute(_CANONICAL_KEY, {"w_id": its_id}).first()
        if row is None:
            return None
        return CanonicalKeyRecord(
            its_id=bytes(row.its_id),
            curve=str(row.curve),
            public_key=bytes(row.public_key),
            active=bool(row.active),
        )

    def revoke_vehicle(self, its_id: bytes) -> int:
        """Deactivate the canonical key of ``its_id`` and revoke all its ECs; how many ECs."""
        with self._engine.begin() as conn:
            conn.execute(
                update(ea_canonical_keys)
                .where(ea_canonical_keys.c.its_id == its_id)
                .values(active=False)
            )
            done = conn.execute(
                update(ea_enrolment_credentials)
                .where(ea_enrolment_credentials.c.its_id == its_id)
                .values(revoked=True)
            )
        return int(done.rowcount)

    def revoke_credential(self, ec_id: bytes) -> None:
        """Revoke one EC; ``NotFoundError`` if the EA never issued it."""
        with self._engine.begin() as conn:
            done = conn.execute(
                update(ea_enrolment_credentials)
                .where(ea_enrolment_credentials.c.ec_id == ec_id)
                .values(revoked=True)
            )
        if done.rowcount != 1:
            raise NotFoundError(f"no EC {ec_id.hex()}")

    def credential(self, ec_id: bytes) -> EnrolmentCredentialRecord | None:
        with self._engine.connect() as conn:
            row = conn.execute(_EC, {"w_id": ec_id}).first()
        if row is None:
            return None
        return EnrolmentCredentialRecord(
            ec_id=bytes(row.ec_id),
            its_id=bytes(row.its_id),
            certificate=bytes(row.certificate),
            not_after=int(row.not_after),
            revoked=bool(row.revoked),
            superseded=bool(row.superseded),
        )

    def add_credential(
        self, *, ec_id: bytes, its_id: bytes, certificate: bytes, not_after: int
    ) -> None:
        """Record a new EC of ``its_id``; the vehicle's earlier ECs become superseded."""
        with self._engine.begin() as conn:
            conn.execute(_SUPERSEDE_ECS, {"w_its_id": its_id})
            conn.execute(
                insert(ea_enrolment_credentials),
                {
                    "ec_id": ec_id,
                    "its_id": its_id,
                    "certificate": certificate,
                    "not_after": not_after,
                    "revoked": False,
                    "superseded": False,
                },
            )

    def credential_counts(self) -> tuple[int, int]:
        """(ECs issued, ECs revoked)."""
        return (
            _count(self._engine, ea_enrolment_credentials),
            _count(self._engine, ea_enrolment_credentials, ea_enrolment_credentials.c.revoked),
        )


# --- the AA -------------------------------------------------------------------------------------


class AuthorizationRecords(_AuthorityRecords):
    """The AA's database: the ATs it issued (hash and bytes only), seen requests, counters."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine, aa_seen_requests, aa_counters)

    def add_ticket(self, *, at_id: bytes, certificate: bytes) -> None:
        with self._engine.begin() as conn:
            conn.execute(insert(aa_issued_tickets), {"at_id": at_id, "certificate": certificate})

    def ticket_count(self) -> int:
        return _count(self._engine, aa_issued_tickets)


# --- the Root CA --------------------------------------------------------------------------------


class RootCaRecords:
    """The Root CA's database: the hierarchy's certificates and the CTLs and CRLs it signed."""

    def __init__(self, engine: Engine) -> None:
        ensure_schema(engine)
        self._engine = engine

    def add_certificates(self, certificates: Iterable[CaCertificateRecord]) -> None:
        with self._engine.begin() as conn:
            for record in certificates:
                conn.execute(
                    insert(ca_certificates),
                    {**record.__dict__, "role": str(record.role)},
                )

    def certificates(self) -> list[CaCertificateRecord]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(ca_certificates)).all()
        return [
            CaCertificateRecord(
                cert_id=bytes(r.cert_id),
                role=V2xCaRole(r.role),
                name=str(r.name),
                certificate=bytes(r.certificate),
                access_point=r.access_point,
                revoked=bool(r.revoked),
            )
            for r in rows
        ]

    def revoke(self, cert_ids: Iterable[bytes]) -> list[bytes]:
        """Mark CA certificates revoked, all or none (``NotFoundError`` names the first unknown);
        returns every revoked certificate's id."""
        with self._engine.begin() as conn:
            for cert_id in cert_ids:
                done = conn.execute(
                    update(ca_certificates)
                    .where(ca_certificates.c.cert_id == cert_id)
                    .values(revoked=True)
                )
                if done.rowcount != 1:
                    raise NotFoundError(f"no CA certificate {cert_id.hex()} in this hierarchy")
            rows = conn.execute(
                select(ca_certificates.c.cert_id).where(ca_certificates.c.revoked)
            ).all()
        return [bytes(r.cert_id) for r in rows]

    def add_publications(self, publications: Iterable[Publication]) -> None:
        """Store signed CTLs and CRLs (one transaction)."""
        with self._engine.begin() as conn:
            for item in publications:
                conn.execute(
                    insert(ca_publications),
                    {"kind": str(item.kind), "sequence": item.sequence, "encoded": item.encoded},
                )

    def latest(self, kind: PublicationKind) -> Publication | None:
        """The newest stored publication of ``kind`` (highest sequence)."""
        with self._engine.connect() as conn:
            row = conn.execute(
                select(ca_publications)
                .where(ca_publications.c.kind == str(kind))
                .order_by(ca_publications.c.sequence.desc())
                .limit(1)
            ).first()
        if row is None:
            return None
        return Publication(kind=kind, sequence=int(row.sequence), encoded=bytes(row.encoded))
