"""Butterfly work rows remember when their batch was first downloaded, so that delivered rows
can be pruned after a retention period (``fleetid.store.butterfly_queue.prune_delivered``).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("butterfly_work") as batch:
        batch.add_column(sa.Column("delivered_at", sa.BigInteger(), nullable=True))
        batch.create_index("ix_butterfly_work_delivered_at", ["delivered_at"])


def downgrade() -> None:
    with op.batch_alter_table("butterfly_work") as batch:
        batch.drop_index("ix_butterfly_work_delivered_at")
        batch.drop_column("delivered_at")
