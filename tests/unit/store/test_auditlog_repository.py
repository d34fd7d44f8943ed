"""The audit log's repository on SQLite and PostgreSQL: append-only rows, a write retried when
another writer took the position, driver failures as ``StoreError``."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from fleetid.errors import StoreError
from fleetid.store.auditlog_repository import AuditLogRows, AuditLogStore, CheckpointRow, EntryRow


def _entry(seq: int, serial: str | None = None) -> EntryRow:
    return EntryRow(
        seq=seq, logged_at="2027-01-01T00:00:00Z", kind="lock", serial=serial, body="{}",
        leaf_hash=bytes([seq]) * 32,
    )  # fmt: skip


@pytest.fixture
def log_store(engine: Engine) -> AuditLogStore:
    store = AuditLogStore(engine)
    store.migrate()
    return store


def test_rows_round_trip_in_log_order(log_store: AuditLogStore) -> None:
    log_store.write(lambda rows: rows.add_entries([_entry(0, "AB"), _entry(1), _entry(2, "ab")]))
    log_store.write(
        lambda rows: rows.add_checkpoint(CheckpointRow(tree_size=3, root_hash=b"r" * 32, note="n"))
    )
    with log_store.reading() as rows:
        assert [e.seq for e in rows.entries(1)] == [1, 2]
        assert [e.seq for e in rows.entries(0, 2)] == [0, 1]
        assert [e.seq for e in rows.entries_for_serials(["AB"])] == [0]  # exact spelling only
        assert rows.size() == 3
        assert rows.leaf_hashes(2) == [(2, bytes([2]) * 32)]
        latest = rows.latest_checkpoint()
        assert latest == CheckpointRow(tree_size=3, root_hash=b"r" * 32, note="n")
        assert rows.checkpoint_at(2) is None


def test_a_taken_position_is_retried_and_then_given_up(log_store: AuditLogStore) -> None:
    log_store.write(lambda rows: rows.add_entries([_entry(0)]))
    failures: list[None] = []
    positions = iter([0, 1])

    def append(rows: AuditLogRows) -> int:
        seq = next(positions)
        rows.add_entries([_entry(seq)])
        return seq

    assert log_store.write(append, on_failure=lambda: failures.append(None)) == 1
    assert len(failures) == 1  # the first attempt met the other writer's row
    with pytest.raises(StoreError, match="kept conflicting"):
        log_store.write(lambda rows: rows.add_entries([_entry(0)]), attempts=2)
    with log_store.reading() as rows:
        assert rows.size() == 2


def test_an_unmigrated_database_is_a_store_error(engine: Engine) -> None:
    reading = AuditLogStore(engine).reading()
    with pytest.raises(StoreError, match="cannot read the audit log"), reading as rows:
        rows.entries()
