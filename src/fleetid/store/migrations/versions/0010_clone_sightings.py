"""Clone detection: each authenticated contact of a device and each quarantined identity
(``fleetid.store.clone_sightings_table``).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "clone_sightings",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("device_id", sa.String(length=128), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("credential_serial", sa.String(length=64), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("counter", sa.BigInteger(), nullable=True),
        sa.Column("nonce", sa.LargeBinary(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clone_sightings")),
    )
    op.create_index(
        op.f("ix_clone_sightings_device_id"), "clone_sightings", ["device_id"], unique=False
    )
    op.create_table(
        "clone_quarantines",
        sa.Column("device_id", sa.String(length=128), nullable=False),
        sa.Column("signal", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("device_id", name=op.f("pk_clone_quarantines")),
    )


def downgrade() -> None:
    op.drop_table("clone_quarantines")
    op.drop_index(op.f("ix_clone_sightings_device_id"), table_name="clone_sightings")
    op.drop_table("clone_sightings")
