"""Butterfly batches: the work queue of per-certificate requests between the registration
authority and the pseudonym CA's workers, and the CA's record of each certificate it issued
(``fleetid.store.butterfly_tables``).

Revision ID: 0006
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "butterfly_work",
        sa.Column("request_id", sa.LargeBinary(length=16), nullable=False),
        sa.Column("batch_id", sa.LargeBinary(length=8), nullable=False),
        sa.Column("i", sa.Integer(), nullable=False),
        sa.Column("j", sa.BigInteger(), nullable=False),
        sa.Column("implicit", sa.Boolean(), nullable=False),
        sa.Column("caterpillar", sa.LargeBinary(), nullable=False),
        sa.Column("plv1", sa.LargeBinary(), nullable=False),
        sa.Column("plv2", sa.LargeBinary(), nullable=False),
        sa.Column("response", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("request_id"),
        sa.UniqueConstraint("batch_id", "i", "j", name="uq_butterfly_work_batch_i_j"),
    )
    op.create_index("ix_butterfly_work_batch_id", "butterfly_work", ["batch_id"], unique=False)
    op.create_table(
        "butterfly_issued",
        sa.Column("certificate_id", sa.LargeBinary(length=8), nullable=False),
        sa.Column("i", sa.Integer(), nullable=False),
        sa.Column("chain_reference1", sa.LargeBinary(), nullable=False),
        sa.Column("chain_reference2", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("certificate_id"),
    )


def downgrade() -> None:
    op.drop_table("butterfly_issued")
    op.drop_index("ix_butterfly_work_batch_id", table_name="butterfly_work")
    op.drop_table("butterfly_work")
