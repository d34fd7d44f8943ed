"""The job queue's schema on PostgreSQL: procrastinate's tables, types, functions and triggers
(``fleetid.store.job_queue``). SQLite runs batch work in process and gets nothing.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


# procrastinate is imported only where its schema is applied: reading the revision scripts (every
# entry point's ensure_schema) stays as cheap as before.


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        from fleetid.store.job_queue import queue_schema

        # escaped: the driver formats the text ("%%" stands for "%")
        op.get_bind().exec_driver_sql(queue_schema().replace("%", "%%"))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        from fleetid.store.job_queue import drop_statements

        for statement in drop_statements():
            op.get_bind().exec_driver_sql(statement)
