"""Which driver errors mean "the database is unavailable, try again" (HTTP 503) and which are a
conflict: a refused PostgreSQL connection is the first; a constraint violation and SQLite's
busy database are not."""

from __future__ import annotations

import pytest
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from fleetid.errors import DatabaseUnavailableError, StoreError
from fleetid.store.engine import as_store_error, database_errors, is_unavailable
from fleetid.store.job_queue import libpq_conninfo


def _raised(url: str, statement: str) -> SQLAlchemyError:
    engine = create_engine(url, connect_args={"connect_timeout": 2} if "postgres" in url else {})
    try:
        with engine.begin() as connection:
            connection.execute(text(statement))
    except SQLAlchemyError as exc:
        return exc
    finally:
        engine.dispose()
    raise AssertionError("no error")


def test_a_refused_postgresql_connection_is_unavailable() -> None:
    exc = _raised("postgresql+psycopg://postgres@127.0.0.1:1/none", "SELECT 1")
    assert isinstance(exc, OperationalError)
    assert is_unavailable(exc)
    error = as_store_error(exc)
    assert isinstance(error, DatabaseUnavailableError)
    assert str(error).startswith("database unavailable: ")
    with pytest.raises(DatabaseUnavailableError), database_errors():
        raise exc


def test_a_lost_connection_under_a_later_error_is_still_unavailable() -> None:
    lost = _raised("postgresql+psycopg://postgres@127.0.0.1:1/none", "SELECT 1")
    try:
        try:
            raise lost
        except OperationalError:
            raise RuntimeError("the rollback failed too") from None
    except RuntimeError as later:
        assert is_unavailable(later)  # found through __context__


def test_a_constraint_violation_and_a_syntax_error_are_not() -> None:
    engine = create_engine("sqlite://")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (a INT PRIMARY KEY)"))
        connection.execute(text("INSERT INTO t VALUES (1)"))
    failures: list[SQLAlchemyError] = []
    for statement in ("SELECT FROM", "INSERT INTO t VALUES (1)"):
        try:
            with engine.begin() as connection:
                connection.execute(text(statement))
        except SQLAlchemyError as exc:
            failures.append(exc)
    engine.dispose()
    assert [type(e) for e in failures] == [OperationalError, IntegrityError]
    for failure in failures:
        assert not is_unavailable(failure)
        error = as_store_error(failure, "refused")
        assert type(error) is StoreError
        assert str(error).startswith("refused: ")
    assert not is_unavailable(ValueError("not a database error"))


def test_the_job_queue_reaches_the_schema_and_timeout_the_url_names() -> None:
    """libpq reads the job queue's connection string as the engine reads the URL: several
    ``-c`` settings in ``options`` (a search_path and the statement timeout) stay apart, and a
    password with separators stays whole."""
    url = (
        "postgresql+psycopg://fleet:p%40ss%20word@db.example:5433/fleetid"
        "?options=-csearch_path%3Dtenant_a%20-c%20statement_timeout%3D10000"
    )
    assert conninfo_to_dict(libpq_conninfo(url)) == {
        "host": "db.example",
        "port": "5433",
        "user": "fleet",
        "password": "p@ss word",
        "dbname": "fleetid",
        "options": "-csearch_path=tenant_a -c statement_timeout=10000",
    }
