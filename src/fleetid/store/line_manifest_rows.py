"""The line manifest's repository: every read and write of ``line_manifest`` by the factory side.

Rows come back typed: the unit's state and step are enums, never the strings and integers of
the columns, and certificates and keys stay DER (the factory decodes them; the store knows no
X.509). Writes take the same enums. The provisioning line writes inside one transaction
(:meth:`LineManifestRows.transaction`) together with its audit-log entries, which take the
transaction's connection. ``LineManifest`` is the authority's view of the same rows (the
factory's, or an imported copy), inside the authority's own transaction.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum, StrEnum
from typing import Any, Final

from sqlalchemy import Connection, Engine, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from fleetid.errors import StoreError
from fleetid.store.bulk import execute_many
from fleetid.store.manifest_table import line_manifest
from fleetid.store.migrate import ensure_schema
from fleetid.store.rows import record_from_row

__all__ = [
    "FINAL_STATES",
    "LineManifest",
    "LineManifestRows",
    "ManifestRecord",
    "ManifestRow",
    "ManifestTransaction",
    "Step",
    "UnitBrief",
    "UnitState",
]

_IN_CHUNK: Final = 500  # units per SQL IN list (SQLite's bound-parameter limit)


class Step(IntEnum):
    """The last step whose effect is recorded for a unit."""

    NONE = 0
    IDENTIFIED = 1
    INJECTED = 2
    CERTIFIED = 3
    SECURED = 4


class UnitState(StrEnum):
    IN_PROGRESS = "in-progress"
    SECURED = "secured"
    QUARANTINED = "quarantined"
    DUPLICATE = "duplicate"


#: A unit in one of these states is done: re-running the line leaves it alone.
FINAL_STATES: Final = frozenset({UnitState.SECURED, UnitState.QUARANTINED, UnitState.DUPLICATE})


@dataclass(frozen=True, slots=True, kw_only=True)
class UnitBrief:
    """Who holds which serial, and how far: what the line reads of every row before a run."""

    unit: str
    serial: str
    state: UnitState

    @property
    def accepted(self) -> bool:
        """Whether this row holds its serial (a duplicate row only records a refusal)."""
        return self.state is not UnitState.DUPLICATE


@dataclass(frozen=True, slots=True, kw_only=True)
class ManifestRow:
    """One row of the line manifest, typed; keys and certificates as DER."""

    unit: str
    serial: str
    state: UnitState
    step: Step
    reason: str | None
    key_version: int | None
    key_kcvs: str | None
    attestation_public_key: bytes | None  # DER SubjectPublicKeyInfo
    idevid: bytes | None  # DER certificate
    idevid_fingerprint: str | None  # SHA-256 of the DER certificate, lower-case hex
    canonical_public_key: bytes | None  # DER SubjectPublicKeyInfo
    canonical_attestation: bytes | None  # DER certificate
    updated_at: str


def _row(row: Any) -> ManifestRow:
    return record_from_row(ManifestRow, row, state=UnitState(row.state), step=Step(row.step))


def _column_value(value: object) -> object:
    """The column form of a typed value: enums by value, everything else as it is."""
    if isinstance(value, UnitState):
        return value.value
    if isinstance(value, Step):
        return int(value)
    return value


class ManifestTransaction:
    """The writes of one line commit; ``connection`` is for the audit entries of the same
    transaction."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def owners(self, serials: Sequence[str]) -> dict[str, str]:
        """The unit that holds each of ``serials`` (duplicates hold nothing), in this
        transaction, so that two line processes never both accept one serial."""
        if not serials:
            return {}
        query = select(line_manifest.c.unit, line_manifest.c.serial).where(
            line_manifest.c.serial.in_(list(serials)),
            line_manifest.c.state != UnitState.DUPLICATE.value,
        )
        return {row.serial: row.unit for row in self.connection.execute(query)}

    def insert(self, rows: Sequence[Mapping[str, object]]) -> None:
        """Insert new rows (``unit`` and columns), one executemany per shape of row."""
        for group in _by_shape(rows).values():
            execute_many(self.connection, insert(line_manifest), group)

    def update(self, changes: Mapping[str, Mapping[str, object]]) -> None:
        """Update the given columns of each unit (``changes``: unit -> columns), one
        executemany per shape of change."""
        shaped = [{"target_unit": unit, **columns} for unit, columns in changes.items()]
        for group in _by_shape(shaped).values():
            values: dict[str, Any] = {k: bindparam(k) for k in group[0] if k != "target_unit"}
            statement = (
                update(line_manifest)
                .where(line_manifest.c.unit == bindparam("target_unit"))
                .values(values)
            )
            execute_many(self.connection, statement, group)


def _by_shape(rows: Sequence[Mapping[str, object]]) -> dict[frozenset[str], list[dict[str, Any]]]:
    shapes: dict[frozenset[str], list[dict[str, Any]]] = {}
    for row in rows:
        values = {k: _column_value(v) for k, v in row.items()}
        shapes.setdefault(frozenset(values), []).append(values)
    return shapes


class LineManifestRows:
    """The line manifest of one database; SQL errors surface as ``StoreError``."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def ensure_schema(self) -> None:
        """Bring the database to the Alembic head (revision 0002 added the canonical key)."""
        try:
            ensure_schema(self._engine)
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot create the line manifest table: {exc}") from exc

    def all(self) -> list[ManifestRow]:
        """Every row, in unit order."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(line_manifest).order_by(line_manifest.c.unit)).all()
        return [_row(row) for row in rows]

    def by_unit(self, unit: str) -> ManifestRow | None:
        with self._engine.connect() as conn:
            row = conn.execute(select(line_manifest).where(line_manifest.c.unit == unit)).first()
        return None if row is None else _row(row)

    def accepted_by_serial(self, serial: str) -> ManifestRow | None:
        """The row that holds ``serial`` (secured, quarantined or in progress), if any."""
        with self._engine.connect() as conn:
            row = conn.execute(
                select(line_manifest).where(
                    line_manifest.c.serial == serial,
                    line_manifest.c.state != UnitState.DUPLICATE.value,
                )
            ).first()
        return None if row is None else _row(row)

    def briefs_and_rows(
        self, units: Sequence[str]
    ) -> tuple[list[UnitBrief], dict[str, ManifestRow]]:
        """Unit, serial and state of every row, and the whole row of each of ``units`` that is
        recorded without a final state (the units a crash left unfinished)."""
        c = line_manifest.c
        with self._engine.connect() as conn:
            briefs = [
                UnitBrief(unit=r.unit, serial=r.serial, state=UnitState(r.state))
                for r in conn.execute(select(c.unit, c.serial, c.state))
            ]
            states = {b.unit: b.state for b in briefs}
            unfinished = [u for u in units if u in states and states[u] not in FINAL_STATES]
            rows: dict[str, ManifestRow] = {}
            for start in range(0, len(unfinished), _IN_CHUNK):
                chunk = unfinished[start : start + _IN_CHUNK]
                query = select(line_manifest).where(c.unit.in_(chunk))
                rows.update((r.unit, _row(r)) for r in conn.execute(query))
        return briefs, rows

    @contextmanager
    def transaction(self) -> Iterator[ManifestTransaction]:
        """One transaction: committed when the block ends, rolled back when it raises."""
        try:
            with self._engine.begin() as conn:
                yield ManifestTransaction(conn)
        except SQLAlchemyError as exc:
            raise StoreError(f"line manifest commit failed: {exc}") from exc


# --- the authority's view --------------------------------------------------------------------

_ACCEPTED_BY_SERIAL = select(line_manifest).where(
    line_manifest.c.serial == bindparam("w_serial"),
    line_manifest.c.state != UnitState.DUPLICATE.value,
)
_INSERT_ROW = insert(line_manifest)


@dataclass(frozen=True, kw_only=True)
class ManifestRecord:
    """A line-manifest row as an authority sees it: what enrolment checks a device against."""

    unit: str
    serial: str
    state: UnitState
    idevid_fingerprint: str | None  # SHA-256 of the DER IDevID, lower-case hex
    attestation_public_key: bytes | None  # DER SubjectPublicKeyInfo
    idevid: bytes | None = None  # DER certificate


class LineManifest:
    """The line manifest rows an authority trusts (the factory's, or an imported copy), read and
    written inside the authority's transaction (``Repositories.manifest``)."""

    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def by_serial(self, serial: str) -> ManifestRecord | None:
        """The accepted row for a device serial (a ``duplicate`` row never answers)."""
        found = self._c.execute(_ACCEPTED_BY_SERIAL, {"w_serial": serial}).one_or_none()
        if found is None:
            return None
        return record_from_row(ManifestRecord, found, state=UnitState(found.state))

    def add(self, record: ManifestRecord, now: datetime) -> None:
        """Import one row (an authority trusting another line's devices)."""
        state = UnitState(record.state)
        values = {
            **record.__dict__,
            "state": state.value,
            "step": int(Step.SECURED if state is UnitState.SECURED else Step.NONE),
            "updated_at": now.isoformat(),
        }
        try:
            self._c.execute(_INSERT_ROW, values)
        except IntegrityError as exc:
            raise StoreError(f"manifest already lists unit {record.unit!r} or its serial") from exc
