"""The butterfly queue's tables come from Alembic as from the metadata, on both databases."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from fleetid.store.butterfly_queue import ButterflyQueue, IssuedRow, WorkRow
from fleetid.store.engine import open_engine
from fleetid.store.migrate import downgrade, upgrade

pytest_plugins = ["tests.db_fixtures"]


def _row(n: int, batch: bytes = b"B" * 8) -> WorkRow:
    return WorkRow(
        request_id=n.to_bytes(16, "big"),
        batch_id=batch,
        i=0,
        j=n,
        implicit=False,
        caterpillar=b"c",
        plv1=b"1",
        plv2=b"2",
    )


def test_the_migration_creates_the_queue(db_url: str) -> None:
    engine = open_engine(db_url)
    try:
        upgrade(engine)
        tables = set(inspect(engine).get_table_names())
        assert {"butterfly_work", "butterfly_issued"} <= tables
        queue = ButterflyQueue(engine)
        queue.enqueue([_row(1), _row(2)])
        assert queue.unanswered() == 2
        assert queue.answers(b"B" * 8) == [(0, 1, None), (0, 2, None)]
    finally:
        engine.dispose()


def test_one_slot_of_a_batch_is_queued_once(db_url: str) -> None:
    engine = open_engine(db_url)
    try:
        queue = ButterflyQueue(engine)
        queue.create_tables()
        queue.enqueue([_row(1)])
        duplicate = WorkRow(**{**_row(1).__dict__, "request_id": b"\x09" * 16})
        with pytest.raises(IntegrityError):
            queue.enqueue([duplicate])
        assert queue.unanswered() == 1
    finally:
        engine.dispose()


def test_an_unknown_batch_has_no_answers(db_url: Any) -> None:
    engine = open_engine(db_url)
    try:
        queue = ButterflyQueue(engine)
        queue.create_tables()
        assert queue.answers(b"X" * 8) == []
        assert queue.record(b"\x00" * 8) is None
    finally:
        engine.dispose()


def _answer_all(queue: ButterflyQueue) -> None:
    def work(rows: list[WorkRow]) -> list[IssuedRow]:
        return [
            IssuedRow(
                request_id=row.request_id,
                response=b"answer" + row.request_id,
                certificate_id=row.request_id[-8:],
                i=row.i,
                chain_reference1=b"r1",
                chain_reference2=b"r2",
            )
            for row in rows
        ]

    while queue.claim_and_answer(10, work):
        pass


def test_delivered_rows_are_pruned_after_the_cutoff_and_no_others(db_url: str) -> None:
    engine = open_engine(db_url)
    try:
        queue = ButterflyQueue(engine)
        queue.create_tables()
        queue.enqueue([_row(1, b"A" * 8), _row(2, b"A" * 8), _row(3, b"B" * 8)])
        _answer_all(queue)
        queue.enqueue([_row(4, b"C" * 8)])  # unanswered: never marked, never pruned
        queue.mark_delivered(b"A" * 8, 1000)
        queue.mark_delivered(b"A" * 8, 5000)  # a repeated download keeps the first time
        queue.mark_delivered(b"C" * 8, 1000)  # nothing answered to deliver
        assert queue.delivered() == {b"A" * 8: 1000}
        assert queue.prune_delivered(1000) == 0  # delivered at the cutoff: kept
        assert queue.prune_delivered(1001) == 2
        assert queue.answers(b"A" * 8) == []
        assert [r is not None for _, _, r in queue.answers(b"B" * 8)] == [True]
        assert queue.answers(b"C" * 8) == [(0, 4, None)]
        assert queue.unanswered() == 1
        assert queue.delivered() == {}
        assert queue.issued_count() == 3  # the CA's records are not the RA's to prune
    finally:
        engine.dispose()


def test_revision_0013_adds_and_drops_the_delivery_column_keeping_rows(db_url: str) -> None:
    engine = open_engine(db_url)
    try:
        upgrade(engine, "0012")
        assert "delivered_at" not in {
            c["name"] for c in inspect(engine).get_columns("butterfly_work")
        }
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO butterfly_work (request_id, batch_id, i, j, implicit,"
                    " caterpillar, plv1, plv2) VALUES (:r, :b, 0, 1, false, :c, :p, :p)"
                ),
                {"r": bytes(16), "b": b"B" * 8, "c": b"c", "p": b"p"},
            )
        upgrade(engine)
        columns = {c["name"] for c in inspect(engine).get_columns("butterfly_work")}
        indexes = {ix["name"] for ix in inspect(engine).get_indexes("butterfly_work")}
        assert "delivered_at" in columns and "ix_butterfly_work_delivered_at" in indexes
        queue = ButterflyQueue(engine)
        assert queue.answers(b"B" * 8) == [(0, 1, None)] and queue.delivered() == {}
        downgrade(engine, "0012")
        assert "delivered_at" not in {
            c["name"] for c in inspect(engine).get_columns("butterfly_work")
        }
        assert queue.unanswered() == 1
    finally:
        engine.dispose()
