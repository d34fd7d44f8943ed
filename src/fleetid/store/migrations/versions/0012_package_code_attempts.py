"""Confirmation-code attempts per package (``packages.cc_attempts``): the preparation service
counts wrong codes and fails the order at its limit (SGP.22 §5.6.2, "Confirmation Code -
Maximum number of retries exceeded").

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("packages") as batch:
        batch.add_column(sa.Column("cc_attempts", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("packages") as batch:
        batch.drop_column("cc_attempts")
