"""Bring a database to the current schema with Alembic, programmatically, on first use.

``ensure_schema(engine)`` is what every entry point calls: it reads the stored revision and runs
``alembic upgrade head`` only when that is behind. The scripts live in
``fleetid/store/migrations`` and ship with the package.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

__all__ = ["current_revision", "downgrade", "ensure_schema", "head_revision", "upgrade"]

_SCRIPTS = Path(__file__).with_name("migrations")


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None  # noqa: S101 - the package ships at least one revision
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def _run(engine: Engine, step: Callable[[Config, str], None], revision: str) -> None:
    config = _config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        step(config, revision)


def upgrade(engine: Engine, revision: str = "head") -> None:
    """``alembic upgrade <revision>`` on ``engine``, in one transaction."""
    _run(engine, command.upgrade, revision)


def downgrade(engine: Engine, revision: str) -> None:
    """``alembic downgrade <revision>`` on ``engine``, in one transaction."""
    _run(engine, command.downgrade, revision)


def ensure_schema(engine: Engine) -> None:
    """Upgrade to head unless the database is there already (cheap when it is)."""
    if current_revision(engine) != head_revision():
        upgrade(engine)
