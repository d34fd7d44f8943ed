"""Opening the database: a SQLAlchemy URL, or a data directory holding ``fleetid.db`` (SQLite).

``Engine`` (SQLAlchemy's) is re-exported as the store's handle of one database, so that services
pass databases around without importing SQLAlchemy; only ``fleetid.store`` writes SQL.

SQLite is opened with ``journal_mode=WAL`` and ``synchronous=FULL`` so that a committed
transaction survives a crash or power loss, and with a busy timeout so that a second process
waits for a writer instead of failing at once.

A statement timeout (``statement_timeout``, seconds; ``fleetid.request_limits``) bounds each SQL
statement: PostgreSQL's own ``statement_timeout`` setting on every connection, and on SQLite an
interrupt from its progress handler once a statement has run that long. Either way the statement
fails, its transaction rolls back whole, and the caller sees a ``StoreError``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from fleetid.errors import ConfigError, DatabaseUnavailableError, StoreError

__all__ = [
    "DB_FILENAME",
    "DRIVER_ERRORS",
    "Connection",
    "Engine",
    "StoreSettings",
    "as_store_error",
    "database_errors",
    "database_url",
    "engine_from_settings",
    "immediate_transaction",
    "is_unavailable",
    "memory_engine",
    "open_engine",
]


class StoreSettings(Protocol):
    """What the store reads of the settings (``fleetid.config.Settings`` has both)."""

    @property
    def data_dir(self) -> Path: ...

    @property
    def database_url(self) -> str | None: ...

    @property
    def statement_timeout_s(self) -> float | None: ...


DB_FILENAME = "fleetid.db"
_BUSY_TIMEOUT_S = 30


def database_url(target: str | Path) -> str:
    """The SQLAlchemy URL for a URL (returned as is) or a data directory (its ``fleetid.db``)."""
    text = str(target)
    if "://" in text:
        # PostgreSQL goes through psycopg 3 unless the URL names a driver.
        for bare in ("postgresql://", "postgres://"):
            if text.startswith(bare):
                return "postgresql+psycopg://" + text.removeprefix(bare)
        return text
    directory = Path(target)
    if not directory.is_dir():
        raise ConfigError(f"data directory {directory} does not exist")
    return f"sqlite:///{directory / DB_FILENAME}"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


# The SQLite VM instructions between two looks at the clock (about a millisecond of work).
_PROGRESS_STEPS = 20_000


def _sqlite_statement_timeout(engine: Engine, seconds: float) -> None:
    """Interrupt any statement of ``engine`` that runs over ``seconds`` (SQLite)."""

    def connected(dbapi_connection: Any, record: Any) -> None:
        def over() -> int:
            started = record.info.get("statement_started")
            return int(started is not None and time.monotonic() - started > seconds)

        dbapi_connection.set_progress_handler(over, _PROGRESS_STEPS)

    def before(connection: Connection, *_args: Any) -> None:
        connection.info["statement_started"] = time.monotonic()

    def after(connection: Connection, *_args: Any) -> None:
        connection.info.pop("statement_started", None)  # COMMIT is never interrupted

    event.listen(engine, "connect", connected)
    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)


def open_engine(target: str | Path | Engine, *, statement_timeout_s: float | None = None) -> Engine:
    """An engine for an existing ``Engine``, a database URL or a data directory; each statement
    bounded by ``statement_timeout_s`` when given."""
    if isinstance(target, Engine):
        return target
    url = database_url(target)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": _BUSY_TIMEOUT_S})
        event.listen(engine, "connect", _sqlite_pragmas)
        if statement_timeout_s:
            _sqlite_statement_timeout(engine, statement_timeout_s)
        return engine
    if statement_timeout_s:
        # libpq's ``options`` (kept beside any the URL already sets, e.g. a search_path).
        parsed = make_url(url)
        milliseconds = max(1, round(statement_timeout_s * 1000))
        options = f"{parsed.query.get('options', '')} -c statement_timeout={milliseconds}"
        return create_engine(
            parsed.update_query_dict({"options": options.strip()}), pool_pre_ping=True
        )
    return create_engine(url, pool_pre_ping=True)


def memory_engine() -> Engine:
    """A private in-memory SQLite database that lives as long as the engine: one connection,
    shared by every thread (a simulated operator's database, a test's)."""
    return create_engine(
        "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
    )


def engine_from_settings(settings: StoreSettings) -> Engine:
    """The authority's engine: ``FLEETID_DATABASE_URL`` if set, else SQLite in the data dir."""
    return open_engine(
        settings.database_url or settings.data_dir,
        statement_timeout_s=settings.statement_timeout_s,
    )


# What the database's driver raises through SQLAlchemy (the HTTP edge maps these, as_store_error).
DRIVER_ERRORS: tuple[type[Exception], ...] = (SQLAlchemyError,)


def _lost_connection(exc: BaseException) -> bool:
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError) and type(exc.orig).__module__.startswith("psycopg")


def is_unavailable(exc: BaseException) -> bool:
    """A lost or refused server connection, in ``exc`` or what it was raised from (a rollback
    that failed after the loss): SQLAlchemy invalidated the connection (the pool reconnects on
    the next checkout), or PostgreSQL's driver reports an operational error (server down,
    restarting, backend terminated). SQLite's "database is locked" is not."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if _lost_connection(current):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def as_store_error(exc: BaseException, what: str = "database error") -> StoreError:
    """A driver's error as a one-line ``StoreError``: ``DatabaseUnavailableError`` when the
    server connection is lost or refused. The driver's first line names host and port, never
    the password."""
    first = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or ["?"])[0]
    if is_unavailable(exc):
        return DatabaseUnavailableError(f"database unavailable: {first}")
    return StoreError(f"{what}: {first}")


@contextmanager
def database_errors() -> Iterator[None]:
    """A driver's error (database down, refused, locked) as a one-line ``StoreError``, which the
    CLI prints without a traceback."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise as_store_error(exc) from exc


@contextmanager
def immediate_transaction(engine: Engine, conflict: str) -> Iterator[Connection]:
    """One write transaction, ``BEGIN IMMEDIATE`` on SQLite (the write lock from the first
    statement, so the reads before a write are inside it); a constraint violation is a
    ``StoreError`` that starts with ``conflict``."""
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "sqlite":
                connection.exec_driver_sql("BEGIN IMMEDIATE")
            yield connection
    except IntegrityError as exc:
        raise StoreError(f"{conflict}: {exc.orig}") from exc
