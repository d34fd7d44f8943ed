"""The V2X authorities' tables (``fleetid.store.v2x_tables``): the EA's canonical keys, ECs,
seen requests and counters; the AA's issued tickets, seen requests and counters; the Root CA's
certificates and publications.

Before this revision the authorities created these tables themselves with ``create_all``, outside
the migrations, so a database may hold some or all of them already (with the same columns). Each
table and index is created only if it is missing (``if_not_exists``: ``CREATE TABLE IF NOT
EXISTS`` on SQLite and PostgreSQL alike), which leaves those tables and their rows as they are;
their primary keys keep the database's default names rather than ``pk_<table>``.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Tables that an authority may have created with ``create_all`` before this revision.
_ADOPTED = True


def _seen_requests(name: str, **options: bool) -> None:
    op.create_table(
        name,
        sa.Column("request_hash", sa.LargeBinary(), nullable=False),
        sa.Column("expires", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("request_hash", name=op.f(f"pk_{name}")),
        if_not_exists=_ADOPTED,
        **options,
    )


def _counters(name: str) -> None:
    op.create_table(
        name,
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f(f"pk_{name}")),
        if_not_exists=_ADOPTED,
    )


def upgrade() -> None:
    op.create_table(
        "v2x_ea_canonical_keys",
        sa.Column("its_id", sa.LargeBinary(), nullable=False),
        sa.Column("curve", sa.String(length=32), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("its_id", name=op.f("pk_v2x_ea_canonical_keys")),
        if_not_exists=_ADOPTED,
    )
    op.create_table(
        "v2x_ea_enrolment_credentials",
        sa.Column("ec_id", sa.LargeBinary(), nullable=False),
        sa.Column("its_id", sa.LargeBinary(), nullable=False),
        sa.Column("certificate", sa.LargeBinary(), nullable=False),
        sa.Column("not_after", sa.BigInteger(), nullable=False),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.Column("superseded", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("ec_id", name=op.f("pk_v2x_ea_enrolment_credentials")),
        if_not_exists=_ADOPTED,
    )
    op.create_index(
        "ix_v2x_ea_enrolment_credentials_its_id",
        "v2x_ea_enrolment_credentials",
        ["its_id"],
        unique=False,
        if_not_exists=_ADOPTED,
    )
    _seen_requests("v2x_ea_seen_requests")
    _counters("v2x_ea_counters")
    # The AA's tables are without rowid on SQLite: the physical order is the key's (a hash), not
    # the issuing order (docs/privacy.md).
    op.create_table(
        "v2x_aa_issued_tickets",
        sa.Column("at_id", sa.LargeBinary(), nullable=False),
        sa.Column("certificate", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("at_id", name=op.f("pk_v2x_aa_issued_tickets")),
        sqlite_with_rowid=False,
        if_not_exists=_ADOPTED,
    )
    _seen_requests("v2x_aa_seen_requests", sqlite_with_rowid=False)
    _counters("v2x_aa_counters")
    op.create_table(
        "v2x_ca_certificates",
        sa.Column("cert_id", sa.LargeBinary(), nullable=False),
        sa.Column("role", sa.String(length=8), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("certificate", sa.LargeBinary(), nullable=False),
        sa.Column("access_point", sa.String(length=255), nullable=True),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("cert_id", name=op.f("pk_v2x_ca_certificates")),
        if_not_exists=_ADOPTED,
    )
    op.create_table(
        "v2x_ca_publications",
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("encoded", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "sequence", name=op.f("pk_v2x_ca_publications")),
        if_not_exists=_ADOPTED,
    )


def downgrade() -> None:
    op.drop_table("v2x_ca_publications")
    op.drop_table("v2x_ca_certificates")
    op.drop_table("v2x_aa_counters")
    op.drop_table("v2x_aa_seen_requests")
    op.drop_table("v2x_aa_issued_tickets")
    op.drop_table("v2x_ea_counters")
    op.drop_table("v2x_ea_seen_requests")
    op.drop_index(
        "ix_v2x_ea_enrolment_credentials_its_id", table_name="v2x_ea_enrolment_credentials"
    )
    op.drop_table("v2x_ea_enrolment_credentials")
    op.drop_table("v2x_ea_canonical_keys")
