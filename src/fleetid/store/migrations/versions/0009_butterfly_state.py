"""Butterfly authorities' state: the RA's devices, the LAs' chains (seeds sealed), sealed
secrets and the seen-request lists (``fleetid.store.butterfly_state_tables``).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_SEEN = ("butterfly_ra_seen_requests", "butterfly_la_seen_requests", "butterfly_pca_seen_requests")


def upgrade() -> None:
    op.create_table(
        "butterfly_ra_devices",
        sa.Column("its_id", sa.LargeBinary(), nullable=False),
        sa.Column("chain1", sa.LargeBinary(), nullable=False),
        sa.Column("chain2", sa.LargeBinary(), nullable=False),
        sa.Column("blocked", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("its_id"),
    )
    for name in _SEEN:
        op.create_table(
            name,
            sa.Column("request_hash", sa.LargeBinary(), nullable=False),
            sa.Column("expires", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint("request_hash"),
        )
    op.create_table(
        "butterfly_la_chains",
        sa.Column("la_id", sa.LargeBinary(length=2), nullable=False),
        sa.Column("chain_id", sa.LargeBinary(length=16), nullable=False),
        sa.Column("token", sa.LargeBinary(), nullable=False),
        sa.Column("initial_seed", sa.LargeBinary(), nullable=False),
        sa.Column("at", sa.Integer(), nullable=False),
        sa.Column("seed", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("la_id", "chain_id"),
    )
    op.create_table(
        "butterfly_secrets",
        sa.Column("owner", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("owner", "name"),
    )


def downgrade() -> None:
    op.drop_table("butterfly_secrets")
    op.drop_table("butterfly_la_chains")
    for name in reversed(_SEEN):
        op.drop_table(name)
    op.drop_table("butterfly_ra_devices")
