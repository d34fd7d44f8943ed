"""The butterfly work queue: enqueue the RA's requests, claim them transactionally, answer.

A claim is one transaction: ``SELECT ... FOR UPDATE SKIP LOCKED`` of up to ``limit`` unanswered
rows (PostgreSQL: workers on any host skip each other's rows; SQLite has no row locks, and its
single writer serialises the transactions instead), the caller's work on them, then the answers
and the CA's records written, and the commit. Nothing is answered unless all of it commits, so a
worker that dies mid-batch (even by SIGKILL: the server ends its session and releases its locks)
leaves its rows for the next claim, and an answer is written only where none is, so a
(device, i, j) is never answered twice. Claims take rows in random order and the CA's records
are inserted in random order within a claim: neither follows the RA's request ids.

Once its device has downloaded a batch, its rows are marked delivered (``mark_delivered``) and
``prune_delivered`` deletes the rows delivered before a cutoff: the RA keeps a downloaded batch
only as long as its retention setting says (a download lost in transit can be repeated until
then). Only answered rows are ever marked, so pruning never takes a row a worker could claim.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Engine, Row, delete, func, insert, select, update

from fleetid.store.butterfly_tables import butterfly_issued, butterfly_work
from fleetid.store.migrate import ensure_schema

__all__ = ["ButterflyQueue", "IssuedRow", "WorkRow", "work_row_from"]


@dataclass(frozen=True, kw_only=True)
class WorkRow:
    """One queued request (the RA's parts, as stored)."""

    request_id: bytes
    batch_id: bytes
    i: int
    j: int
    implicit: bool
    caterpillar: bytes = field(repr=False)
    plv1: bytes = field(repr=False)
    plv2: bytes = field(repr=False)


@dataclass(frozen=True, kw_only=True)
class IssuedRow:
    """The CA's answer to one request (``request_id`` says which row it answers) and its
    record of the certificate (the rest, all that ``butterfly_issued`` keeps)."""

    request_id: bytes
    response: bytes = field(repr=False)
    certificate_id: bytes
    i: int
    chain_reference1: bytes = field(repr=False)
    chain_reference2: bytes = field(repr=False)


def work_row_from(r: Row[Any]) -> WorkRow:
    """A ``butterfly_work`` row as the RA's request."""
    return WorkRow(
        request_id=bytes(r.request_id),
        batch_id=bytes(r.batch_id),
        i=int(r.i),
        j=int(r.j),
        implicit=bool(r.implicit),
        caterpillar=bytes(r.caterpillar),
        plv1=bytes(r.plv1),
        plv2=bytes(r.plv2),
    )


class ButterflyQueue:
    """The queue over one database (shared by the RA and every CA worker)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def create_tables(self) -> None:
        """Bring the database to the schema head (the queue's tables are revision 0006)."""
        ensure_schema(self._engine)

    def enqueue(self, rows: Iterable[WorkRow]) -> None:
        values = [
            {
                "request_id": row.request_id,
                "batch_id": row.batch_id,
                "i": row.i,
                "j": row.j,
                "implicit": row.implicit,
                "caterpillar": row.caterpillar,
                "plv1": row.plv1,
                "plv2": row.plv2,
            }
            for row in rows
        ]
        if values:
            with self._engine.begin() as conn:
                conn.execute(insert(butterfly_work), values)

    def claim_and_answer(
        self,
        limit: int,
        work: Callable[[list[WorkRow]], list[IssuedRow]],
        *,
        batch_id: bytes | None = None,
    ) -> int:
        """Claim up to ``limit`` unanswered rows (of one batch if ``batch_id`` is given), answer
        them with ``work``, commit; the count.

        If ``work`` raises, or the process dies, the transaction rolls back and the rows stay
        unanswered.
        """
        unanswered: list[ColumnElement[bool]] = [butterfly_work.c.response.is_(None)]
        if batch_id is not None:
            unanswered.append(butterfly_work.c.batch_id == batch_id)
        with self._engine.begin() as conn:
            claimed = conn.execute(
                select(butterfly_work)
                .where(*unanswered)
                .order_by(func.random())
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()
            if not claimed:
                return 0
            rows = [work_row_from(r) for r in claimed]
            answers = work(rows)
            random.SystemRandom().shuffle(answers)  # the records' order says nothing
            for answer in answers:
                done = conn.execute(
                    update(butterfly_work)
                    .where(butterfly_work.c.request_id == answer.request_id)
                    .where(butterfly_work.c.response.is_(None))
                    .values(response=answer.response)
                )
                if done.rowcount != 1:
                    raise RuntimeError("a claimed request was answered by someone else")
            conn.execute(
                insert(butterfly_issued),
                [
                    {
                        "certificate_id": a.certificate_id,
                        "i": a.i,
                        "chain_reference1": a.chain_reference1,
                        "chain_reference2": a.chain_reference2,
                    }
                    for a in answers
                ],
            )
            return len(answers)

    def pending_batches(self) -> list[bytes]:
        """The batches that have an unanswered request, in batch-id order."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(butterfly_work.c.batch_id)
                .where(butterfly_work.c.response.is_(None))
                .distinct()
                .order_by(butterfly_work.c.batch_id)
            ).all()
        return [bytes(r.batch_id) for r in rows]

    def unanswered(self) -> int:
        with self._engine.connect() as conn:
            count = conn.execute(
                select(func.count()).where(butterfly_work.c.response.is_(None))
            ).scalar_one()
        return int(count)

    def answers(self, batch_id: bytes) -> list[tuple[int, int, bytes | None]]:
        """(i, j, response or None) of every request of a batch, in (i, j) order."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(butterfly_work.c.i, butterfly_work.c.j, butterfly_work.c.response)
                .where(butterfly_work.c.batch_id == batch_id)
                .order_by(butterfly_work.c.i, butterfly_work.c.j)
            ).all()
        return [(int(i), int(j), None if r is None else bytes(r)) for i, j, r in rows]

    def issued_count(self) -> int:
        with self._engine.connect() as conn:
            return int(
                conn.execute(select(func.count()).select_from(butterfly_issued)).scalar_one()
            )

    def record(self, certificate_id: bytes) -> tuple[int, bytes, bytes] | None:
        """The CA's record of a certificate: (i, chain reference 1, chain reference 2)."""
        with self._engine.connect() as conn:
            row = conn.execute(
                select(butterfly_issued).where(butterfly_issued.c.certificate_id == certificate_id)
            ).first()
        if row is None:
            return None
        return int(row.i), bytes(row.chain_reference1), bytes(row.chain_reference2)

    def mark_delivered(self, batch_id: bytes, at: int) -> None:
        """Record that the batch's device downloaded it at ``at`` (Time32); the first download
        counts, so a repeated one does not extend the retention."""
        with self._engine.begin() as conn:
            conn.execute(
                update(butterfly_work)
                .where(butterfly_work.c.batch_id == batch_id)
                .where(butterfly_work.c.response.is_not(None))
                .where(butterfly_work.c.delivered_at.is_(None))
                .values(delivered_at=at)
            )

    def delivered(self) -> dict[bytes, int]:
        """When each delivered batch still held was first downloaded (Time32), by batch id."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(butterfly_work.c.batch_id, func.min(butterfly_work.c.delivered_at))
                .where(butterfly_work.c.delivered_at.is_not(None))
                .group_by(butterfly_work.c.batch_id)
            ).all()
        return {bytes(batch_id): int(at) for batch_id, at in rows}

    def prune_delivered(self, before: int) -> int:
        """Delete the rows delivered before ``before`` (Time32); the number deleted."""
        with self._engine.begin() as conn:
            done = conn.execute(
                delete(butterfly_work).where(butterfly_work.c.delivered_at < before)
            )
        return int(done.rowcount)
