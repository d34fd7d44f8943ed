"""CRL publications: the full and delta CRLs of each shard of each issuing CA
(``fleetid.store.crl_table``).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "crl_publications",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("issuer_id", sa.Integer(), nullable=False),
        sa.Column("shard", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("crl_number", sa.BigInteger(), nullable=False),
        sa.Column("base_number", sa.BigInteger(), nullable=True),
        sa.Column("watermark", sa.BigInteger(), nullable=False),
        sa.Column("this_update", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_update", sa.DateTime(timezone=True), nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.CheckConstraint("kind IN ('full', 'delta')", name=op.f("ck_crl_publications_kind")),
        sa.CheckConstraint(
            "(kind = 'delta') = (base_number IS NOT NULL)",
            name=op.f("ck_crl_publications_delta_base"),
        ),
        sa.ForeignKeyConstraint(
            ["issuer_id"], ["ca_keys.id"], name=op.f("fk_crl_publications_issuer_id_ca_keys")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crl_publications")),
        sa.UniqueConstraint(
            "issuer_id", "shard", "crl_number", name="uq_crl_publications_issuer_shard_number"
        ),
    )
    op.create_index(
        "ix_crl_publications_latest",
        "crl_publications",
        ["issuer_id", "shard", "kind", "crl_number"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_crl_publications_latest", table_name="crl_publications")
    op.drop_table("crl_publications")
