"""Revocation events: the history of each certificate's revocation state (revocation, escalation,
release from hold), keyed by sequence number (``fleetid.store.schema.revocation_events``).
Existing revocations become one event each. ``certificates.invalidity_date`` (RFC 5280
§5.3.2), set when a revocation or escalation names when the key was compromised. A counter
``audit`` whose row lock serialises the authority's audit-log appends
(``fleetid.authority.ca_audit``).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_REASONS = (
    "unspecified",
    "keyCompromise",
    "cACompromise",
    "affiliationChanged",
    "superseded",
    "cessationOfOperation",
    "certificateHold",
    "removeFromCRL",
    "privilegeWithdrawn",
    "aACompromise",
)


def upgrade() -> None:
    op.add_column(
        "certificates", sa.Column("invalidity_date", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_table(
        "revocation_events",
        sa.Column("sequence", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column(
            "certificate_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("reason", sa.String(length=24), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("invalidity_date", sa.DateTime(timezone=True), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            f"reason IN ({', '.join(repr(r) for r in _REASONS)})",
            name=op.f("ck_revocation_events_reason"),
        ),
        sa.ForeignKeyConstraint(
            ["certificate_id"],
            ["certificates.id"],
            name=op.f("fk_revocation_events_certificate_id_certificates"),
        ),
        sa.PrimaryKeyConstraint("sequence", name=op.f("pk_revocation_events")),
    )
    op.create_index(
        "ix_revocation_events_certificate_id",
        "revocation_events",
        ["certificate_id", "sequence"],
        unique=False,
    )
    op.execute(
        "INSERT INTO revocation_events (sequence, certificate_id, reason, revoked_at, recorded_at)"
        " SELECT revocation_seq, id, revocation_reason, revoked_at, revoked_at FROM certificates"
        " WHERE revocation_seq IS NOT NULL AND revocation_reason IS NOT NULL"
    )
    op.execute("INSERT INTO counters (name, value) VALUES ('audit', 0)")


def downgrade() -> None:
    op.execute("DELETE FROM counters WHERE name = 'audit'")
    op.drop_index("ix_revocation_events_certificate_id", table_name="revocation_events")
    op.drop_table("revocation_events")
    with op.batch_alter_table("certificates") as batch:
        batch.drop_column("invalidity_date")
