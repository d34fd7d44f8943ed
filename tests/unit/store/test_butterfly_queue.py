"""The butterfly queue's tables come from Alembic as from the metadata, on both databases."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError

from fleetid.store.butterfly_queue import ButterflyQueue, WorkRow
from fleetid.store.engine import open_engine
from fleetid.store.migrate import upgrade

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
