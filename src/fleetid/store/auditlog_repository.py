"""The audit log's rows (``fleetid.store.auditlog_table``): what ``fleetid.factory.auditlog``
reads and appends, as records, and the transactions it runs them in.

``AuditLogStore`` opens the log's database and hands out ``AuditLogRows`` bound to one connection:
``reading()`` for a read, ``write()`` for one transaction (retried when another writer took the same
position, which the primary keys refuse). A driver's failure surfaces as ``StoreError``. The rows
are append-only: there is no update and no delete here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Row, bindparam, func, insert, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from fleetid.errors import StoreError
from fleetid.store.auditlog_table import audit_checkpoints, audit_entries
from fleetid.store.bulk import execute_many
from fleetid.store.engine import as_store_error, open_engine
from fleetid.store.migrate import ensure_schema
from fleetid.store.rows import record_from_row

__all__ = ["AuditLogRows", "AuditLogStore", "CheckpointRow", "EntryRow", "Transaction"]

#: An open transaction a caller hands to the log so that its rows join it (``Connection``).
Transaction = Connection

_T = TypeVar("_T")

_ENTRIES_FROM = (
    select(audit_entries)
    .where(audit_entries.c.seq >= bindparam("w_start"))
    .order_by(audit_entries.c.seq)
)
_LATEST_CHECKPOINT = (
    select(audit_checkpoints).order_by(audit_checkpoints.c.tree_size.desc()).limit(1)
)
_CHECKPOINT_AT = select(audit_checkpoints).where(
    audit_checkpoints.c.tree_size == bindparam("w_size")
)
_TOP = select(func.max(audit_entries.c.seq))
_LEAF_HASHES_FROM = (
    select(audit_entries.c.seq, audit_entries.c.leaf_hash)
    .where(audit_entries.c.seq >= bindparam("w_start"))
    .order_by(audit_entries.c.seq)
)
_INSERT_ENTRY = insert(audit_entries)
_INSERT_CHECKPOINT = insert(audit_checkpoints)


@dataclass(frozen=True, kw_only=True)
class EntryRow:
    """One stored entry: the leaf's fields as written, and the leaf hash stored with them."""

    seq: int
    logged_at: str
    kind: str
    serial: str | None
    body: str  # RFC 8785 canonical JSON
    leaf_hash: bytes


@dataclass(frozen=True, kw_only=True)
class CheckpointRow:
    """One stored checkpoint: its size and root, and the signed note as text."""

    tree_size: int
    root_hash: bytes
    note: str


def _entry(row: Row[Any]) -> EntryRow:
    return record_from_row(EntryRow, row)


def _checkpoint(row: Row[Any] | None) -> CheckpointRow | None:
    if row is None:
        return None
    return CheckpointRow(
        tree_size=int(row.tree_size), root_hash=bytes(row.root_hash), note=row.note
    )


class AuditLogRows:
    """The audit tables on one connection (one read, or one transaction)."""

    def __init__(self, connection: Connection) -> None:
        self._c = connection

    def entries(self, start: int = 0, stop: int | None = None) -> list[EntryRow]:
        """Entries ``start`` ≤ seq < ``stop`` in log order."""
        query = _ENTRIES_FROM
        if stop is not None:
            query = query.where(audit_entries.c.seq < stop)
        return [_entry(row) for row in self._c.execute(query, {"w_start": start})]

    def entries_for_serials(self, serials: Iterable[str]) -> list[EntryRow]:
        """Entries naming any of ``serials`` (exact spellings; indexed), in log order."""
        query = (
            select(audit_entries)
            .where(audit_entries.c.serial.in_(sorted(set(serials))))
            .order_by(audit_entries.c.seq)
        )
        return [_entry(row) for row in self._c.execute(query)]

    def checkpoints(self) -> list[CheckpointRow]:
        """Every stored checkpoint, by size."""
        query = select(audit_checkpoints).order_by(audit_checkpoints.c.tree_size)
        return [row for row in map(_checkpoint, self._c.execute(query)) if row is not None]

    def latest_checkpoint(self) -> CheckpointRow | None:
        try:
            return _checkpoint(self._c.execute(_LATEST_CHECKPOINT).first())
        except SQLAlchemyError as exc:
            raise as_store_error(exc, "cannot read the audit log") from exc

    def checkpoint_at(self, size: int) -> CheckpointRow | None:
        return _checkpoint(self._c.execute(_CHECKPOINT_AT, {"w_size": size}).first())

    def size(self) -> int:
        """The number of stored entries if they have no gap: the highest ``seq`` plus one."""
        try:
            top = self._c.execute(_TOP).scalar_one()
        except SQLAlchemyError as exc:
            raise as_store_error(exc, "cannot read the audit log") from exc
        return 0 if top is None else int(top) + 1

    def leaf_hashes(self, start: int = 0) -> list[tuple[int, bytes]]:
        """(seq, leaf hash) of the entries from ``start``, in log order."""
        rows = self._c.execute(_LEAF_HASHES_FROM, {"w_start": start})
        return [(int(row.seq), bytes(row.leaf_hash)) for row in rows]

    def add_entries(self, entries: Sequence[EntryRow]) -> None:
        """Append entries (one executemany); a taken position is a unique-key violation."""
        execute_many(self._c, _INSERT_ENTRY, [entry.__dict__ for entry in entries])

    def add_checkpoint(self, checkpoint: CheckpointRow) -> None:
        self._c.execute(_INSERT_CHECKPOINT, checkpoint.__dict__)


class AuditLogStore:
    """The audit log's database (an engine, a URL or a data directory)."""

    def __init__(self, engine_or_url: Engine | str | Path) -> None:
        self.engine = open_engine(engine_or_url)

    def migrate(self) -> None:
        """Bring the database to the store's head revision (the log's tables are revision 0001)."""
        try:
            ensure_schema(self.engine)
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot create the audit log tables: {exc}") from exc

    @contextmanager
    def reading(self) -> Iterator[AuditLogRows]:
        """Rows on a connection for reading; database failures surface as ``StoreError``."""
        try:
            with self.engine.connect() as connection:
                yield AuditLogRows(connection)
        except SQLAlchemyError as exc:
            raise as_store_error(exc, "cannot read the audit log") from exc

    def write(
        self,
        operation: Callable[[AuditLogRows], _T],
        transaction: Transaction | None = None,
        *,
        attempts: int = 3,
        on_failure: Callable[[], None] = lambda: None,
    ) -> _T:
        """Run ``operation`` in ``transaction`` (the caller commits or rolls back), or else in a
        transaction of its own, run again when another writer took the same position (up to
        ``attempts`` times). ``on_failure`` runs whenever an attempt fails, whatever the cause."""
        if transaction is not None:
            return operation(AuditLogRows(transaction))
        for attempt in range(attempts):
            try:
                with self.engine.begin() as connection:
                    return operation(AuditLogRows(connection))
            except IntegrityError as exc:
                on_failure()
                if attempt == attempts - 1:
                    raise StoreError(f"audit log append kept conflicting: {exc}") from exc
            except SQLAlchemyError as exc:
                on_failure()
                raise as_store_error(exc, "audit log write failed") from exc
            except BaseException:
                on_failure()
                raise
        raise AssertionError("unreachable")  # pragma: no cover
