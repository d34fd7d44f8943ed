"""The line manifest's repository: typed rows in, typed rows out, one transaction per commit."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetid.errors import StoreError
from fleetid.store.engine import open_engine
from fleetid.store.line_manifest_rows import (
    FINAL_STATES,
    LineManifestRows,
    Step,
    UnitState,
)

NOW = "2026-01-01T00:00:00+00:00"


@pytest.fixture
def rows(tmp_path: Path) -> LineManifestRows:
    repository = LineManifestRows(open_engine(tmp_path))
    repository.ensure_schema()
    return repository


def _unit(unit: str, serial: str, state: UnitState, step: Step) -> dict[str, object]:
    return {"unit": unit, "serial": serial, "state": state, "step": step, "updated_at": NOW}


def test_rows_come_back_typed(rows: LineManifestRows) -> None:
    with rows.transaction() as transaction:
        transaction.insert([_unit("U1", "S1", UnitState.IN_PROGRESS, Step.IDENTIFIED)])
    (row,) = rows.all()
    assert row.state is UnitState.IN_PROGRESS and row.step is Step.IDENTIFIED
    assert row.idevid is None and row.key_version is None
    with rows.transaction() as transaction:
        transaction.update(
            {"U1": {"state": UnitState.SECURED, "step": Step.SECURED, "idevid": b"\x30\x00"}}
        )
    row = rows.by_unit("U1")
    assert row is not None
    assert row.state is UnitState.SECURED and row.step is Step.SECURED
    assert row.idevid == b"\x30\x00" and isinstance(row.idevid, bytes)
    assert rows.by_unit("U2") is None


def test_a_duplicate_row_holds_no_serial(rows: LineManifestRows) -> None:
    with rows.transaction() as transaction:
        transaction.insert(
            [
                _unit("U1", "S1", UnitState.SECURED, Step.SECURED),
                _unit("U2", "S1", UnitState.DUPLICATE, Step.NONE),
            ]
        )
        assert transaction.owners(["S1", "S9"]) == {"S1": "U1"}
        assert transaction.owners([]) == {}
    accepted = rows.accepted_by_serial("S1")
    assert accepted is not None and accepted.unit == "U1"
    assert rows.accepted_by_serial("S9") is None
    briefs, unfinished = rows.briefs_and_rows(["U1", "U2"])
    assert {(b.unit, b.accepted) for b in briefs} == {("U1", True), ("U2", False)}
    assert unfinished == {}


def test_only_unfinished_units_are_read_whole(rows: LineManifestRows) -> None:
    units = [f"U{i:04d}" for i in range(1203)]  # more than two chunks of the IN list
    with rows.transaction() as transaction:
        transaction.insert(
            [_unit(u, f"S{u}", UnitState.IN_PROGRESS, Step.INJECTED) for u in units[:-1]]
            + [_unit(units[-1], "SX", UnitState.QUARANTINED, Step.INJECTED)]
        )
    briefs, unfinished = rows.briefs_and_rows([*units, "not-recorded"])
    assert len(briefs) == len(units)
    assert set(unfinished) == set(units[:-1])
    assert all(row.step is Step.INJECTED for row in unfinished.values())
    assert UnitState.QUARANTINED in FINAL_STATES and UnitState.IN_PROGRESS not in FINAL_STATES


def test_a_second_accepted_row_for_a_serial_fails_as_a_store_error(
    rows: LineManifestRows,
) -> None:
    with rows.transaction() as transaction:
        transaction.insert([_unit("U1", "S1", UnitState.SECURED, Step.SECURED)])
    taken = _unit("U2", "S1", UnitState.SECURED, Step.SECURED)
    with (
        pytest.raises(StoreError, match="line manifest commit failed"),
        rows.transaction() as transaction,
    ):
        transaction.insert([taken])
    assert [row.unit for row in rows.all()] == ["U1"]


def test_a_failed_transaction_writes_nothing(rows: LineManifestRows) -> None:
    with pytest.raises(StoreError), rows.transaction() as transaction:
        transaction.insert([_unit("U1", "S1", UnitState.IN_PROGRESS, Step.IDENTIFIED)])
        transaction.insert([_unit("U1", "S2", UnitState.IN_PROGRESS, Step.IDENTIFIED)])
    assert rows.all() == []
