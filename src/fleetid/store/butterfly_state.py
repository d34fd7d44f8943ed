"""The butterfly authorities' state between restarts (``fleetid.store.butterfly_state_tables``).

``RaRecords`` is the registration authority's: its devices, its seen batch requests and its
per-certificate requests (the rows of ``butterfly_work``, answered in place). ``LaChains`` is a
linkage authority's chains; ``SealedSecrets`` an authority's sealed keys. Values that are secret
arrive here sealed (``fleetid.crypto.sealed_state``): this module stores bytes it cannot read.
Every authority brings its database to the schema head when it opens it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Engine, delete, func, insert, select, update

from fleetid.store.butterfly_queue import ButterflyQueue, WorkRow, work_row_from
from fleetid.store.butterfly_state_tables import (
    butterfly_la_chains,
    butterfly_la_seen_requests,
    butterfly_pca_seen_requests,
    butterfly_ra_devices,
    butterfly_ra_seen_requests,
    butterfly_secrets,
)
from fleetid.store.butterfly_tables import butterfly_issued, butterfly_work
from fleetid.store.migrate import ensure_schema
from fleetid.store.v2x_repository import SeenRequests

__all__ = [
    "ChainRow",
    "DeviceRow",
    "LaChains",
    "RaRecords",
    "SealedSecrets",
    "add_issued",
    "la_seen_requests",
    "pca_seen_requests",
]


@dataclass(frozen=True, kw_only=True)
class DeviceRow:
    its_id: bytes
    chains: tuple[bytes, bytes] = field(repr=False)
    blocked: bool


@dataclass(frozen=True, kw_only=True)
class ChainRow:
    chain_id: bytes
    token: bytes
    initial_seed: bytes = field(repr=False)  # sealed
    at: int
    seed: bytes = field(repr=False)  # sealed


class RaRecords:
    """The registration authority's devices, seen requests and queued requests."""

    def __init__(self, engine: Engine) -> None:
        ensure_schema(engine)
        self._engine = engine
        self.queue = ButterflyQueue(engine)
        self.seen = SeenRequests(engine, butterfly_ra_seen_requests)

    def add_device(self, row: DeviceRow) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                insert(butterfly_ra_devices).values(
                    its_id=row.its_id,
                    chain1=row.chains[0],
                    chain2=row.chains[1],
                    blocked=row.blocked,
                )
            )

    def devices(self) -> list[DeviceRow]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(butterfly_ra_devices)).all()
        return [
            DeviceRow(
                its_id=bytes(r.its_id),
                chains=(bytes(r.chain1), bytes(r.chain2)),
                blocked=bool(r.blocked),
            )
            for r in rows
        ]

    def block(self, its_id: bytes) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                update(butterfly_ra_devices)
                .where(butterfly_ra_devices.c.its_id == its_id)
                .values(blocked=True)
            )

    def requests(self) -> list[tuple[WorkRow, bytes | None]]:
        """Every queued per-certificate request with its answer (None while unanswered)."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(butterfly_work)).all()
        return [(work_row_from(r), None if r.response is None else bytes(r.response)) for r in rows]

    def answer(self, answers: list[tuple[bytes, bytes]]) -> None:
        """Store (request id, encrypted answer) pairs where no answer is yet."""
        with self._engine.begin() as conn:
            for request_id, response in answers:
                conn.execute(
                    update(butterfly_work)
                    .where(butterfly_work.c.request_id == request_id)
                    .where(butterfly_work.c.response.is_(None))
                    .values(response=response)
                )


class LaChains:
    """One linkage authority's chains (seeds sealed by the caller)."""

    def __init__(self, engine: Engine, la_id: bytes) -> None:
        ensure_schema(engine)
        self._engine = engine
        self._la_id = la_id

    def add(self, row: ChainRow) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                insert(butterfly_la_chains).values(
                    la_id=self._la_id,
                    chain_id=row.chain_id,
                    token=row.token,
                    initial_seed=row.initial_seed,
                    at=row.at,
                    seed=row.seed,
                )
            )

    def get(self, chain_id: bytes) -> ChainRow | None:
        with self._engine.connect() as conn:
            r = conn.execute(
                select(butterfly_la_chains)
                .where(butterfly_la_chains.c.la_id == self._la_id)
                .where(butterfly_la_chains.c.chain_id == chain_id)
            ).first()
        if r is None:
            return None
        return ChainRow(
            chain_id=bytes(r.chain_id),
            token=bytes(r.token),
            initial_seed=bytes(r.initial_seed),
            at=int(r.at),
            seed=bytes(r.seed),
        )

    def advance(self, chain_id: bytes, at: int, seed: bytes) -> None:
        """Move the chain's latest seed forward to period ``at`` (never back)."""
        with self._engine.begin() as conn:
            conn.execute(
                update(butterfly_la_chains)
                .where(butterfly_la_chains.c.la_id == self._la_id)
                .where(butterfly_la_chains.c.chain_id == chain_id)
                .where(butterfly_la_chains.c.at < at)
                .values(at=at, seed=seed)
            )

    def count(self) -> int:
        with self._engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count()).where(butterfly_la_chains.c.la_id == self._la_id)
                ).scalar_one()
            )


class SealedSecrets:
    """One authority's sealed values by name."""

    def __init__(self, engine: Engine, owner: str) -> None:
        ensure_schema(engine)
        self._engine = engine
        self._owner = owner

    def put(self, name: str, sealed: bytes) -> None:
        """Store (or replace) one sealed value."""
        with self._engine.begin() as conn:
            conn.execute(
                delete(butterfly_secrets)
                .where(butterfly_secrets.c.owner == self._owner)
                .where(butterfly_secrets.c.name == name)
            )
            conn.execute(
                insert(butterfly_secrets).values(owner=self._owner, name=name, sealed=sealed)
            )

    def all(self) -> dict[str, bytes]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(butterfly_secrets.c.name, butterfly_secrets.c.sealed).where(
                    butterfly_secrets.c.owner == self._owner
                )
            ).all()
        return {str(name): bytes(sealed) for name, sealed in rows}


def add_issued(engine: Engine, records: list[tuple[bytes, int, bytes, bytes]]) -> None:
    """The pseudonym CA's records (HashedId8, i, chain reference 1, 2) of one batch; read back
    with ``ButterflyQueue.record``."""
    if not records:
        return
    with engine.begin() as conn:
        conn.execute(
            insert(butterfly_issued),
            [
                {"certificate_id": c, "i": i, "chain_reference1": r1, "chain_reference2": r2}
                for c, i, r1, r2 in records
            ],
        )


def la_seen_requests(engine: Engine) -> SeenRequests:
    ensure_schema(engine)
    return SeenRequests(engine, butterfly_la_seen_requests)


def pca_seen_requests(engine: Engine) -> SeenRequests:
    ensure_schema(engine)
    return SeenRequests(engine, butterfly_pca_seen_requests)
