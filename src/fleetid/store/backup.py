"""Copying the authority's database out and back (``fleetid backup`` / ``fleetid restore``).

SQLite: the online backup API (``sqlite3.Connection.backup``, the C ``sqlite3_backup_*`` calls)
copies a consistent snapshot page by page while the server keeps writing; the copy is a plain
SQLite file. PostgreSQL: ``pg_dump --format=custom`` and ``pg_restore``, PostgreSQL's own tools,
with the connection given in the environment (``PGPASSWORD``), never on the command line.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Final
from urllib.parse import unquote

from sqlalchemy import Engine, inspect
from sqlalchemy.engine import URL

from fleetid.errors import ConfigError, StoreError

__all__ = [
    "PG_DUMP_FILENAME",
    "SQLITE_FILENAME",
    "backup_database",
    "database_is_empty",
    "restore_database",
]

SQLITE_FILENAME: Final = "fleetid.db"
PG_DUMP_FILENAME: Final = "fleetid.pgdump"
_PAGES_PER_STEP: Final = 1024  # the writer gets the lock back between steps


def _sqlite_path(engine: Engine) -> Path:
    database = engine.url.database
    if not database or database == ":memory:":
        raise ConfigError("an in-memory database has nothing to back up")
    return Path(database)


def _libpq(url: URL, *, dump: bool) -> tuple[list[str], dict[str, str]]:
    """``pg_dump``/``pg_restore`` arguments and environment for a SQLAlchemy PostgreSQL URL; the
    schema named by a ``search_path`` option (``?options=-csearch_path=S``) limits the dump."""
    env = dict(os.environ)
    args = ["--dbname", url.database or "postgres"]
    if url.host:
        args += ["--host", url.host]
    if url.port:
        args += ["--port", str(url.port)]
    if url.username:
        args += ["--username", url.username]
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    options = url.query.get("options")
    if options:
        text = unquote(options if isinstance(options, str) else options[0])
        env["PGOPTIONS"] = text
        for part in text.split():
            if dump and part.startswith("-csearch_path="):
                args += ["--schema", part.removeprefix("-csearch_path=")]
    return args, env


def _run(command: list[str], env: dict[str, str]) -> None:
    tool = command[0]
    if shutil.which(tool) is None:
        raise ConfigError(f"{tool} is not installed (Debian: postgresql-client)")
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        first = (done.stderr.strip().splitlines() or ["?"])[0]
        raise StoreError(f"{tool} failed: {first}")


def backup_database(engine: Engine, directory: Path) -> Path:
    """A consistent copy of ``engine``'s database in ``directory``; the file written."""
    if engine.dialect.name == "sqlite":
        target = directory / SQLITE_FILENAME
        source = sqlite3.connect(_sqlite_path(engine))
        copy = sqlite3.connect(target)
        try:
            source.backup(copy, pages=_PAGES_PER_STEP)
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite backup failed: {exc}") from exc
        finally:
            copy.close()
            source.close()
        return target
    if engine.dialect.name == "postgresql":
        target = directory / PG_DUMP_FILENAME
        args, env = _libpq(engine.url, dump=True)
        _run(["pg_dump", "--format=custom", "--no-owner", "--file", str(target), *args], env)
        return target
    raise ConfigError(f"no backup for a {engine.dialect.name} database")


def database_is_empty(engine: Engine) -> bool:
    """Whether the database holds no table (a restore never overwrites one)."""
    return not inspect(engine).get_table_names()


def restore_database(dump: Path, engine: Engine) -> None:
    """Load ``dump`` (what ``backup_database`` wrote) into ``engine``'s empty database."""
    if not database_is_empty(engine):
        raise ConfigError(f"the target database {engine.url.render_as_string()} is not empty")
    if dump.name == SQLITE_FILENAME:
        if engine.dialect.name != "sqlite":
            raise ConfigError("a SQLite backup restores into SQLite (--database-url)")
        source = sqlite3.connect(f"file:{dump}?mode=ro", uri=True)
        copy = sqlite3.connect(_sqlite_path(engine))
        try:
            source.backup(copy, pages=_PAGES_PER_STEP)
        finally:
            copy.close()
            source.close()
        return
    if engine.dialect.name != "postgresql":
        raise ConfigError("a pg_dump backup restores into PostgreSQL (--database-url)")
    args, env = _libpq(engine.url, dump=False)
    _run(["pg_restore", "--no-owner", "--exit-on-error", *args, str(dump)], env)
