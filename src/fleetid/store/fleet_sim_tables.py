"""The fleet simulation's tables (``fleetid.sim.fleet``): its devices as rows, its event queue,
its stage and daily figures, and the revocation artefacts it published, day by day.

A simulated fleet of a million devices is a million rows here, never a million objects in
memory: every stage reads and writes them in batches (``fleetid.store.fleet_sim_repository``).

* ``fleet_sim_meta``: the run's options (seed, size, years) and its cursors, one key a row;
* ``fleet_sim_stages``: each finished stage's wall and CPU seconds, units and peak RSS;
* ``fleet_sim_devices``: one row per device: its plan (kind, connectivity profile), its lifecycle
  state, its current credential (certificate DER and SE key handle), the day its renewal falls
  due and its revocation-sync days;
* ``fleet_sim_events``: the scheduler's queue of one-off lifecycle events (re-key, revoke, go
  silent, decommission, move to the other authority), by simulated day;
* ``fleet_sim_daily``: named figures per simulated day (issuance by credential type, bytes per
  profile, staleness), added to as batches commit;
* ``fleet_sim_syncs``: how many devices of a profile synchronised their revocation data on one
  day after last doing so on another, from which convergence times follow;
* ``fleet_sim_artefacts``: every CRL and filter published, with its day, so that any device's
  view at the end can be rebuilt from what it had fetched.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
)

from fleetid.store.metadata import metadata

__all__ = [
    "fleet_sim_artefacts",
    "fleet_sim_daily",
    "fleet_sim_devices",
    "fleet_sim_events",
    "fleet_sim_meta",
    "fleet_sim_stages",
    "fleet_sim_syncs",
]

fleet_sim_meta = Table(
    "fleet_sim_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

fleet_sim_stages = Table(
    "fleet_sim_stages",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("seconds", Float, nullable=False),
    Column("cpu_seconds", Float, nullable=False),
    Column("units", BigInteger, nullable=False),
    Column("peak_rss_bytes", BigInteger, nullable=False),
)

fleet_sim_devices = Table(
    "fleet_sim_devices",
    metadata,
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("unit", String(80), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("profile", String(16), nullable=False),
    Column("authority", String(8), nullable=False),
    Column("state", String(16), nullable=False),
    Column("serial", String(64), nullable=True),
    Column("handle", Integer, nullable=True),
    Column("certificate", LargeBinary, nullable=True),
    Column("renew_day", Integer, nullable=True),
    Column("next_sync_day", Integer, nullable=True),
    Column("last_sync_day", Integer, nullable=True),
    Column("revoked_day", Integer, nullable=True),
)
Index("ix_fleet_sim_devices_state", fleet_sim_devices.c.state)
Index("ix_fleet_sim_devices_renew_day", fleet_sim_devices.c.renew_day)
Index("ix_fleet_sim_devices_next_sync_day", fleet_sim_devices.c.next_sync_day)

fleet_sim_events = Table(
    "fleet_sim_events",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("day", Integer, nullable=False),
    Column("idx", BigInteger, nullable=False),
    Column("kind", String(16), nullable=False),
)
Index("ix_fleet_sim_events_day", fleet_sim_events.c.day)

fleet_sim_daily = Table(
    "fleet_sim_daily",
    metadata,
    Column("day", Integer, primary_key=True, autoincrement=False),
    Column("name", String(64), primary_key=True),
    Column("value", Float, nullable=False),
)

fleet_sim_syncs = Table(
    "fleet_sim_syncs",
    metadata,
    Column("profile", String(16), primary_key=True),
    Column("from_day", Integer, primary_key=True, autoincrement=False),
    Column("to_day", Integer, primary_key=True, autoincrement=False),
    Column("devices", BigInteger, nullable=False),
)

fleet_sim_artefacts = Table(
    "fleet_sim_artefacts",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("day", Integer, nullable=False),
    Column("channel", String(16), nullable=False),
    Column("url", String(255), nullable=False),
    Column("data", LargeBinary, nullable=False),
)
Index("ix_fleet_sim_artefacts_day", fleet_sim_artefacts.c.day)
