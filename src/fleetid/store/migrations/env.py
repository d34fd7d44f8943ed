"""Alembic environment: always online, on the connection ``fleetid.store.migrate`` hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, text

from fleetid.store.schema import metadata

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("run migrations through fleetid.store.migrate, which passes a connection")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite ALTER goes through batch mode
    compare_type=True,
)
with context.begin_transaction():
    if connection.dialect.name == "postgresql":
        # Two processes starting at once: one migrates, the other waits, then finds it done.
        connection.execute(text("SELECT pg_advisory_xact_lock(7030)"))
    context.run_migrations()
