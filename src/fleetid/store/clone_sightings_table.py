"""What the clone detector keeps (``fleetid.authority.clone_detection``): each authenticated
contact of a device (``clone_sightings``) and each identity it quarantined
(``clone_quarantines``), so that every authority process sees one history and a restart forgets
nothing. Revision 0010 creates both tables.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, LargeBinary, String, Table, Text

from fleetid.store.schema import UtcDateTime, metadata

__all__ = ["clone_quarantines", "clone_sightings"]

clone_sightings = Table(
    "clone_sightings",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("device_id", String(128), nullable=False, index=True),
    Column("source", String(255), nullable=False),
    Column("credential_serial", String(64), nullable=False),
    Column("seen_at", UtcDateTime, nullable=False),
    Column("counter", BigInteger, nullable=True),
    Column("nonce", LargeBinary(64), nullable=True),
)

clone_quarantines = Table(
    "clone_quarantines",
    metadata,
    Column("device_id", String(128), primary_key=True),
    Column("signal", String(32), nullable=False),
    Column("detail", Text, nullable=False),
    Column("detected_at", UtcDateTime, nullable=False),
)
