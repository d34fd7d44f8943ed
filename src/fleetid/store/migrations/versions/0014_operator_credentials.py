"""The operator CA's credentials: serial, name, role, certificate, validity and revocation
(``fleetid.store.operator_credentials_table``).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "operator_credentials",
        sa.Column("serial", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("certificate", sa.LargeBinary(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("serial"),
    )
    op.create_index(
        op.f("ix_operator_credentials_name"), "operator_credentials", ["name"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_operator_credentials_name"), table_name="operator_credentials")
    op.drop_table("operator_credentials")
