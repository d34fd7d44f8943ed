"""FIDO authenticators: metadata BLOBs, authenticator models, registration challenges and
operator credentials (``fleetid.store.fido_tables``).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fido_metadata_blobs",
        sa.Column("serial", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("next_update", sa.DateTime(timezone=True), nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sha256", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("serial", name=op.f("pk_fido_metadata_blobs")),
    )
    op.create_table(
        "fido_authenticators",
        sa.Column("model", sa.String(length=80), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=48), nullable=False),
        sa.Column("status_effective", sa.String(length=10), nullable=True),
        sa.Column("roots_pem", sa.Text(), nullable=False),
        sa.Column("blob_serial", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("model", name=op.f("pk_fido_authenticators")),
    )
    op.create_table(
        "fido_challenges",
        sa.Column("challenge", sa.LargeBinary(length=32), nullable=False),
        sa.Column("operator", sa.String(length=128), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("challenge", name=op.f("pk_fido_challenges")),
    )
    op.create_table(
        "fido_operator_credentials",
        sa.Column("credential_id", sa.LargeBinary(length=1023), nullable=False),
        sa.Column("operator", sa.String(length=128), nullable=False),
        sa.Column("aaguid", sa.String(length=36), nullable=False),
        sa.Column("fmt", sa.String(length=16), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("sign_count", sa.BigInteger(), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("credential_id", name=op.f("pk_fido_operator_credentials")),
    )
    op.create_index(
        op.f("ix_fido_operator_credentials_operator"),
        "fido_operator_credentials",
        ["operator"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_fido_operator_credentials_operator"), table_name="fido_operator_credentials"
    )
    op.drop_table("fido_operator_credentials")
    op.drop_table("fido_challenges")
    op.drop_table("fido_authenticators")
    op.drop_table("fido_metadata_blobs")
