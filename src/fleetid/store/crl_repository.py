"""Published CRLs (``crl_publications``), as typed records: the CRL publisher's only SQL.

One CRL number sequence per (issuer, shard), shared by the full and the delta CRLs (RFC 5280
§5.2.4). A number is taken inside the write transaction that records its CRL
(:meth:`CrlRepository.numbering`): on SQLite that transaction is ``BEGIN IMMEDIATE``, so two
publishers (``fleetid serve`` and ``fleetid crl publish``) take numbers one at a time; a
PostgreSQL race on the same number fails on the UNIQUE constraint, raised as ``StoreError``.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, select

from fleetid.errors import StoreError
from fleetid.store import engine as store_engine
from fleetid.store.crl_table import crl_publications
from fleetid.store.rows import record_from_row

__all__ = ["CrlKind", "CrlNumbering", "CrlPublicationRecord", "CrlRepository"]


class CrlKind(enum.StrEnum):
    """A complete CRL, or a delta CRL over one (RFC 5280 §5.2.4)."""

    FULL = "full"
    DELTA = "delta"


@dataclass(frozen=True, kw_only=True)
class CrlPublicationRecord:
    """One row of ``crl_publications``."""

    issuer_id: int
    shard: int
    kind: CrlKind
    crl_number: int
    base_number: int | None  # a delta's BaseCRLNumber
    watermark: int
    this_update: datetime
    next_update: datetime
    der: bytes = field(repr=False)

    @property
    def etag(self) -> str:
        """The HTTP entity tag of the CRL's bytes (RFC 9110 §8.8.3)."""
        return '"' + hashlib.sha256(self.der).hexdigest()[:32] + '"'


def _record(row: Any) -> CrlPublicationRecord:
    return record_from_row(CrlPublicationRecord, row, kind=CrlKind(row.kind))


def _of(issuer_id: int, shard: int, kind: CrlKind) -> tuple[Any, ...]:
    """The WHERE clauses that select one shard's CRLs of one kind."""
    return (
        crl_publications.c.issuer_id == issuer_id,
        crl_publications.c.shard == shard,
        crl_publications.c.kind == str(kind),
    )


class CrlNumbering:
    """The next CRL number of one (issuer, shard), held inside a write transaction until its CRL
    is recorded (or the transaction rolls back)."""

    def __init__(self, connection: Connection, issuer_id: int, shard: int) -> None:
        self._c = connection
        self.issuer_id = issuer_id
        self.shard = shard
        self.number = 1 + int(
            connection.execute(
                select(func.coalesce(func.max(crl_publications.c.crl_number), 0)).where(
                    crl_publications.c.issuer_id == issuer_id,
                    crl_publications.c.shard == shard,
                )
            ).scalar_one()
        )

    def record(self, publication: CrlPublicationRecord) -> None:
        """Record the CRL signed under ``number``."""
        if (publication.issuer_id, publication.shard, publication.crl_number) != (
            self.issuer_id,
            self.shard,
            self.number,
        ):
            raise StoreError("a CRL is recorded under the number its transaction took")
        values = asdict(publication)
        values["kind"] = str(publication.kind)
        self._c.execute(insert(crl_publications).values(**values))


class CrlRepository:
    """Reads and writes of ``crl_publications``."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def _writing(self) -> AbstractContextManager[Connection]:
        return store_engine.immediate_transaction(
            self._engine, "CRL publication conflict, publish again"
        )

    def latest(self, issuer_id: int, shard: int, kind: CrlKind) -> CrlPublicationRecord | None:
        """The newest CRL of ``kind`` of one shard, if any."""
        with self._engine.connect() as c:
            row = c.execute(
                select(crl_publications)
                .where(*_of(issuer_id, shard, kind))
                .order_by(crl_publications.c.crl_number.desc())
                .limit(1)
            ).one_or_none()
        return None if row is None else _record(row)

    def oldest_full_since(
        self, issuer_id: int, shard: int, since: datetime
    ) -> CrlPublicationRecord | None:
        """The lowest-numbered full CRL of one shard whose thisUpdate is at or after ``since``."""
        with self._engine.connect() as c:
            row = c.execute(
                select(crl_publications)
                .where(
                    *_of(issuer_id, shard, CrlKind.FULL), crl_publications.c.this_update >= since
                )
                .order_by(crl_publications.c.crl_number)
                .limit(1)
            ).one_or_none()
        return None if row is None else _record(row)

    @contextmanager
    def numbering(self, issuer_id: int, shard: int) -> Iterator[CrlNumbering]:
        """One write transaction holding the next CRL number of (issuer, shard)."""
        with self._writing() as connection:
            yield CrlNumbering(connection, issuer_id, shard)

    def prune(
        self,
        issuer_id: int,
        shard: int,
        *,
        base_number: int,
        superseded_deltas_below: int,
        refreshed: Callable[[Sequence[tuple[int, datetime]]], Iterable[int]],
    ) -> None:
        """In one write transaction, delete the shard's full CRLs numbered below
        ``base_number``, its deltas numbered below ``superseded_deltas_below``, and the fulls
        ``refreshed`` picks among those from ``base_number`` on (given as (number, thisUpdate)
        in number order)."""
        with self._writing() as connection:
            fulls = connection.execute(
                select(crl_publications.c.crl_number, crl_publications.c.this_update)
                .where(
                    *_of(issuer_id, shard, CrlKind.FULL),
                    crl_publications.c.crl_number >= base_number,
                )
                .order_by(crl_publications.c.crl_number)
            ).all()
            dropped = list(refreshed([(row[0], row[1]) for row in fulls]))
            connection.execute(
                delete(crl_publications).where(
                    crl_publications.c.issuer_id == issuer_id,
                    crl_publications.c.shard == shard,
                    (
                        (crl_publications.c.kind == str(CrlKind.FULL))
                        & (
                            (crl_publications.c.crl_number < base_number)
                            | crl_publications.c.crl_number.in_(dropped)
                        )
                    )
                    | (
                        (crl_publications.c.kind == str(CrlKind.DELTA))
                        & (crl_publications.c.crl_number < superseded_deltas_below)
                    ),
                )
            )
