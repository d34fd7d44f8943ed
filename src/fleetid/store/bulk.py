"""Many rows of one shape, written through the DB-API driver's ``executemany``.

``Connection.execute(statement, rows)`` processes every row's parameters in Python (bind names,
type processors) before the driver sees them; for the provisioning line's batches that costs as
much as the driver's own work. ``execute_many`` compiles the statement once per call for the
connection's dialect and hands the driver plain values in its own parameter style (qmark for
SQLite: tuples in bind order; named styles for PostgreSQL drivers: the mappings). The compiled
text is remembered per statement, dialect and column keys: the audit log appends its entries
this way in every group-committed batch, and compiling an INSERT each time cost more than the
driver's execution of it.

Only for columns whose values the driver takes as they are (str, int, bytes, None). The driver
still reports constraint violations as usual, wrapped by SQLAlchemy as ``IntegrityError``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.dml import UpdateBase

__all__ = ["execute_many"]


def execute_many(
    conn: Connection, statement: UpdateBase, rows: Sequence[Mapping[str, Any]]
) -> None:
    """``conn.execute(statement, rows)`` for rows that all have the keys of the first."""
    if not rows:
        return
    sql, order = _compiled(statement, conn.dialect, tuple(rows[0]))
    if order is None:
        conn.exec_driver_sql(sql, [dict(row) for row in rows])
    else:
        conn.exec_driver_sql(sql, [tuple(row[name] for name in order) for row in rows])


@lru_cache(maxsize=256)
def _compiled(
    statement: UpdateBase, dialect: Dialect, keys: tuple[str, ...]
) -> tuple[str, tuple[str, ...] | None]:
    """The driver's SQL for ``statement`` with ``keys`` bound, and the positional bind order
    (``None`` for a named parameter style). Statements are immutable once built."""
    compiled = statement.compile(dialect=dialect, column_keys=list(keys))
    order = compiled.positiontup
    return str(compiled), None if order is None else tuple(order)
