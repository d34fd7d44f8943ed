"""Many rows of one shape, written through the DB-API driver's ``executemany``.

``Connection.execute(statement, rows)`` processes every row's parameters in Python (bind names,
type processors) before the driver sees them; for the provisioning line's batches that costs as
much as the driver's own work. ``execute_many`` compiles the statement once per call for the
connection's dialect and hands the driver plain values in its own parameter style (qmark for
SQLite: tuples in bind order; named styles for PostgreSQL drivers: the mappings).

Only for columns whose values the driver takes as they are (str, int, bytes, None). The driver
still reports constraint violations as usual, wrapped by SQLAlchemy as ``IntegrityError``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.sql.dml import UpdateBase

__all__ = ["execute_many"]


def execute_many(
    conn: Connection, statement: UpdateBase, rows: Sequence[Mapping[str, Any]]
) -> None:
    """``conn.execute(statement, rows)`` for rows that all have the keys of the first."""
    if not rows:
        return
    compiled = statement.compile(dialect=conn.dialect, column_keys=list(rows[0]))
    order = compiled.positiontup
    if order is None:
        conn.exec_driver_sql(str(compiled), [dict(row) for row in rows])
    else:
        conn.exec_driver_sql(str(compiled), [tuple(row[name] for name in order) for row in rows])
