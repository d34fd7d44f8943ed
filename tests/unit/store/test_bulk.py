"""store.bulk.execute_many: the same rows as Connection.execute, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from fleetid.store.bulk import execute_many
from fleetid.store.manifest_table import line_manifest
from fleetid.store.migrate import ensure_schema


def _row(unit: str, serial: str, **extra: object) -> dict[str, object]:
    return {
        "unit": unit,
        "serial": serial,
        "state": "in-progress",
        "step": 1,
        "reason": None,
        "idevid": bytes(range(256)) + unit.encode(),  # every byte value, as BLOB / bytea
        "updated_at": "2026-11-27T00:00:00+00:00",
        **extra,
    }


def _table(engine: Engine) -> dict[str, dict[str, object]]:
    with engine.connect() as conn:
        rows = conn.execute(select(line_manifest)).mappings().all()
    return {str(r["unit"]): dict(r) for r in rows}


def test_inserts_and_updates_as_sqlalchemy_does(engine: Engine) -> None:
    ensure_schema(engine)
    rows = [_row(f"U{i}", f"S{i}") for i in range(5)]
    with engine.begin() as conn:
        execute_many(conn, insert(line_manifest), rows)
    stored = _table(engine)
    assert set(stored) == {f"U{i}" for i in range(5)}
    for row in rows:
        got = stored[str(row["unit"])]
        assert {k: got[k] for k in row} == row
        assert got["key_version"] is None  # columns not given stay NULL
    changes = [
        {"target_unit": "U1", "state": "secured", "step": 4},
        {"target_unit": "U3", "state": "quarantined", "step": 2},
    ]
    statement = (
        update(line_manifest)
        .where(line_manifest.c.unit == bindparam("target_unit"))
        .values({"state": bindparam("state"), "step": bindparam("step")})
    )
    with engine.begin() as conn:
        execute_many(conn, statement, changes)
    after = _table(engine)
    assert (after["U1"]["state"], after["U1"]["step"]) == ("secured", 4)
    assert (after["U3"]["state"], after["U3"]["step"]) == ("quarantined", 2)
    assert {u: after[u]["state"] for u in ("U0", "U2", "U4")} == dict.fromkeys(
        ("U0", "U2", "U4"), "in-progress"
    )


def test_a_constraint_violation_is_an_integrity_error_and_rolls_back(engine: Engine) -> None:
    ensure_schema(engine)
    with engine.begin() as conn:
        execute_many(conn, insert(line_manifest), [_row("U0", "S0")])
    with pytest.raises(IntegrityError), engine.begin() as conn:
        # The second row takes an accepted serial (the partial unique index).
        execute_many(conn, insert(line_manifest), [_row("U1", "S1"), _row("U2", "S0")])
    assert set(_table(engine)) == {"U0"}


def test_no_rows_is_no_statement(engine: Engine) -> None:
    ensure_schema(engine)
    with engine.begin() as conn:
        execute_many(conn, insert(line_manifest), [])
    assert _table(engine) == {}


def test_one_statement_with_other_column_keys_binds_those_columns(engine: Engine) -> None:
    # The compiled text is remembered per statement and column keys: a second call with more
    # keys must bind them, not reuse the first call's column list.
    ensure_schema(engine)
    statement = insert(line_manifest)
    with engine.begin() as conn:
        execute_many(conn, statement, [_row("K0", "S0")])
        execute_many(conn, statement, [_row("K1", "S1", key_version=7)])
        execute_many(conn, statement, [_row("K2", "S2")])
    stored = _table(engine)
    assert [stored[u]["key_version"] for u in ("K0", "K1", "K2")] == [None, 7, None]
