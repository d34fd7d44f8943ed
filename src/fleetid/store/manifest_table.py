"""The line manifest: one row per physical unit that came off the wafer, in the audit log's DB.

A unit is a die position on a wafer lot (``unit``); the device serial is what its chip reports
(CPLC). A serial may appear once among the units that were accepted; a second chip presenting it
gets a row of its own in state ``duplicate`` (the partial unique index allows exactly that), so
the refusal is on record and the first device keeps its identity.

``step`` is the last step whose effect is recorded (see ``fleetid.factory.line.Step``). The
row and the audit-log entries of a step commit in one transaction.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
)

from fleetid.store.metadata import metadata

__all__ = ["line_manifest"]


line_manifest = Table(
    "line_manifest",
    metadata,
    Column("unit", String(64), primary_key=True),
    Column("serial", String(64), nullable=False),
    # in-progress | secured | quarantined | duplicate
    Column("state", String(16), nullable=False),
    Column("step", Integer, nullable=False),
    Column("reason", Text, nullable=True),
    Column("key_version", Integer, nullable=True),
    Column("key_kcvs", String(32), nullable=True),
    Column("attestation_public_key", LargeBinary, nullable=True),  # DER SubjectPublicKeyInfo
    Column("idevid_fingerprint", String(64), nullable=True),  # SHA-256 of the DER certificate
    Column("idevid", LargeBinary, nullable=True),  # DER certificate
    # The vehicle's canonical key (ETSI TS 102 941 §6.2.3.2), generated on the card during
    # personalisation, and the card's ATTEST certificate over it (revision 0002).
    Column("canonical_public_key", LargeBinary, nullable=True),  # DER SubjectPublicKeyInfo
    Column("canonical_attestation", LargeBinary, nullable=True),  # DER certificate
    Column("updated_at", String(40), nullable=False),
)
Index(
    "ux_line_manifest_serial_accepted",
    line_manifest.c.serial,
    unique=True,
    sqlite_where=line_manifest.c.state != "duplicate",
    postgresql_where=line_manifest.c.state != "duplicate",
)
Index("ix_line_manifest_state", line_manifest.c.state)
