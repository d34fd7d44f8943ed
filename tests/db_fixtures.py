"""Database fixtures: every storage test runs on SQLite and on PostgreSQL.

PostgreSQL is the server named by ``$FLEETID_TEST_POSTGRES`` (default: ``postgres`` with trust
auth on 127.0.0.1:5432, database ``test``; ``.ci/run`` starts it). Each test gets a schema of its
own (``fleetid_t_<random>``), reached through ``search_path`` in the URL, and dropped afterwards,
so parallel workers never meet. Where no PostgreSQL answers, the PostgreSQL variants skip and say
why; under ``CI=true`` they fail instead.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import OperationalError

from fleetid.store.engine import open_engine
from tests.optional import unavailable

__all__ = ["BACKENDS", "database_url_for", "engine_for", "postgres_server_url"]

BACKENDS = ("sqlite", "postgresql")
_DEFAULT_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def postgres_server_url() -> str:
    return os.environ.get("FLEETID_TEST_POSTGRES", _DEFAULT_SERVER)


def _admin_engine() -> Engine:
    engine = create_engine(postgres_server_url(), connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as exc:
        engine.dispose()
        unavailable(f"PostgreSQL not reachable at {postgres_server_url()}: {exc.orig}")
    return engine


@pytest.fixture
def database_url_for(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A function ``(backend) -> URL`` of an empty database; cleaned up after the test."""
    schemas: list[str] = []
    admin: list[Engine] = []

    def make(backend: str) -> str:
        if backend == "sqlite":
            directory = tmp_path_factory.mktemp("db")
            return f"sqlite:///{directory / 'fleetid.db'}"
        if not admin:
            admin.append(_admin_engine())
        schema = f"fleetid_t_{secrets.token_hex(6)}"
        with admin[0].begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        schemas.append(schema)
        return f"{postgres_server_url()}?options={quote(f'-csearch_path={schema}')}"

    yield make
    for schema in schemas:
        with admin[0].begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    for engine in admin:
        engine.dispose()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db_url(backend: str, database_url_for: object) -> str:
    """The URL of an empty database on the parametrised backend."""
    url: str = database_url_for(backend)  # type: ignore[operator]
    return url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = open_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def engine_for() -> Iterator[object]:
    """A function ``(url) -> Engine``; every engine it opened is disposed after the test."""
    engines: list[Engine] = []

    def make(url: str) -> Engine:
        engine = open_engine(url)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.dispose()
