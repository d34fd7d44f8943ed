"""The fleet simulation's tables: devices as rows, the event queue, stage and daily figures,
revocation syncs and published artefacts (``fleetid.store.fleet_sim_tables``).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fleet_sim_meta",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "fleet_sim_stages",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("cpu_seconds", sa.Float(), nullable=False),
        sa.Column("units", sa.BigInteger(), nullable=False),
        sa.Column("peak_rss_bytes", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "fleet_sim_devices",
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("unit", sa.String(length=80), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("profile", sa.String(length=16), nullable=False),
        sa.Column("authority", sa.String(length=8), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("serial", sa.String(length=64), nullable=True),
        sa.Column("handle", sa.Integer(), nullable=True),
        sa.Column("certificate", sa.LargeBinary(), nullable=True),
        sa.Column("renew_day", sa.Integer(), nullable=True),
        sa.Column("next_sync_day", sa.Integer(), nullable=True),
        sa.Column("last_sync_day", sa.Integer(), nullable=True),
        sa.Column("revoked_day", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("idx"),
    )
    op.create_index("ix_fleet_sim_devices_state", "fleet_sim_devices", ["state"])
    op.create_index("ix_fleet_sim_devices_renew_day", "fleet_sim_devices", ["renew_day"])
    op.create_index("ix_fleet_sim_devices_next_sync_day", "fleet_sim_devices", ["next_sync_day"])
    op.create_table(
        "fleet_sim_events",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("idx", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_fleet_sim_events_day", "fleet_sim_events", ["day"])
    op.create_table(
        "fleet_sim_daily",
        sa.Column("day", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("day", "name"),
    )
    op.create_table(
        "fleet_sim_syncs",
        sa.Column("profile", sa.String(length=16), nullable=False),
        sa.Column("from_day", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("to_day", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("devices", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("profile", "from_day", "to_day"),
    )
    op.create_table(
        "fleet_sim_artefacts",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("url", sa.String(length=255), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_index("ix_fleet_sim_artefacts_day", "fleet_sim_artefacts", ["day"])


def downgrade() -> None:
    op.drop_index("ix_fleet_sim_artefacts_day", table_name="fleet_sim_artefacts")
    op.drop_table("fleet_sim_artefacts")
    op.drop_table("fleet_sim_syncs")
    op.drop_table("fleet_sim_daily")
    op.drop_index("ix_fleet_sim_events_day", table_name="fleet_sim_events")
    op.drop_table("fleet_sim_events")
    op.drop_index("ix_fleet_sim_devices_next_sync_day", table_name="fleet_sim_devices")
    op.drop_index("ix_fleet_sim_devices_renew_day", table_name="fleet_sim_devices")
    op.drop_index("ix_fleet_sim_devices_state", table_name="fleet_sim_devices")
    op.drop_table("fleet_sim_devices")
    op.drop_table("fleet_sim_stages")
    op.drop_table("fleet_sim_meta")
