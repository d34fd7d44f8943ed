"""Credential packages and discovery events (``fleetid.store.package_tables``): the
preparation service's packages, ES9+ transactions and handled notifications, and the discovery
service's event index and ES11 sessions.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _when(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "packages",
        sa.Column("event_id", sa.String(length=32), nullable=False),
        sa.Column("reference", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=True),
        sa.Column("binding_sha256", sa.LargeBinary(length=32), nullable=False),
        sa.Column("cc_hash", sa.LargeBinary(length=32), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=True),
        _when("created_at"),
        _when("expires_at"),
        _when("updated_at"),
        sa.Column("transaction_id", sa.String(length=32), nullable=True),
        sa.Column("bound", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("event_id", name="pk_packages"),
    )
    op.create_table(
        "package_transactions",
        sa.Column("transaction_id", sa.String(length=32), nullable=False),
        sa.Column("server_challenge", sa.LargeBinary(length=16), nullable=False),
        sa.Column("euicc_challenge", sa.LargeBinary(length=16), nullable=False),
        _when("expires_at"),
        sa.Column("event_id", sa.String(length=32), nullable=True),
        sa.Column("notification_key", sa.LargeBinary(), nullable=True),
        sa.Column("otpk_sha256", sa.LargeBinary(length=32), nullable=True),
        sa.PrimaryKeyConstraint("transaction_id", name="pk_package_transactions"),
    )
    op.create_index(
        "ix_package_transactions_event_id", "package_transactions", ["event_id"], unique=False
    )
    op.create_table(
        "package_notifications",
        sa.Column("transaction_id", sa.String(length=32), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=32), nullable=False),
        sa.Column("success", sa.Boolean(), nullable=False),
        _when("received_at"),
        sa.PrimaryKeyConstraint("transaction_id", "sequence", name="pk_package_notifications"),
    )
    op.create_table(
        "discovery_events",
        sa.Column("event_id", sa.String(length=32), nullable=False),
        sa.Column("device_ref", sa.String(length=64), nullable=False),
        sa.Column("service_address", sa.String(length=255), nullable=False),
        _when("registered_at"),
        sa.PrimaryKeyConstraint("event_id", name="pk_discovery_events"),
    )
    op.create_index("ix_discovery_events_device_ref", "discovery_events", ["device_ref"])
    op.create_table(
        "discovery_sessions",
        sa.Column("transaction_id", sa.String(length=32), nullable=False),
        sa.Column("server_challenge", sa.LargeBinary(length=16), nullable=False),
        _when("expires_at"),
        sa.Column("used", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("transaction_id", name="pk_discovery_sessions"),
    )


def downgrade() -> None:
    op.drop_table("discovery_sessions")
    op.drop_index("ix_discovery_events_device_ref", table_name="discovery_events")
    op.drop_table("discovery_events")
    op.drop_table("package_notifications")
    op.drop_index("ix_package_transactions_event_id", table_name="package_transactions")
    op.drop_table("package_transactions")
    op.drop_table("packages")
