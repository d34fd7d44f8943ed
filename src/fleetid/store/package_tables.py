"""Credential packages and discovery events (SQLAlchemy Core), revisions 0008 and 0012.

``packages`` is the preparation service's record of each order: the event ID, the order's
reference, the kind and public content of the package, the SHA-256 of the binding key (the
device's SE attestation key) and nothing else about the device; its state machine
(released → downloaded → installed | failed → deleted) and, once downloaded, the bound package
as it was sent. ``package_transactions`` holds one ES9+ session each (its challenges, the
package it resolved to, the device's notification key and one-time key), ``package_notifications``
every notification handled (so that none is handled twice), ``discovery_events`` the discovery
service's index (device reference → event ID, service address) and ``discovery_sessions`` its
ES11 challenges.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    String,
    Table,
)

from fleetid.store.metadata import metadata
from fleetid.store.schema import UtcDateTime

__all__ = [
    "discovery_events",
    "discovery_sessions",
    "package_notifications",
    "package_transactions",
    "packages",
]

packages = Table(
    "packages",
    metadata,
    Column("event_id", String(32), primary_key=True),
    Column("reference", String(128), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("content", LargeBinary, nullable=True),
    Column("binding_sha256", LargeBinary(32), nullable=False),
    Column("cc_hash", LargeBinary(32), nullable=True),
    Column("state", String(16), nullable=False),
    Column("reason", String(64), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("transaction_id", String(32), nullable=True),
    Column("bound", LargeBinary, nullable=True),
    # wrong confirmation codes so far (revision 0012); the order fails at the service's limit
    Column("cc_attempts", Integer, nullable=False, server_default="0"),
)

package_transactions = Table(
    "package_transactions",
    metadata,
    Column("transaction_id", String(32), primary_key=True),
    Column("server_challenge", LargeBinary(16), nullable=False),
    Column("euicc_challenge", LargeBinary(16), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("event_id", String(32), nullable=True, index=True),
    Column("notification_key", LargeBinary, nullable=True),
    Column("otpk_sha256", LargeBinary(32), nullable=True),
)

package_notifications = Table(
    "package_notifications",
    metadata,
    Column("transaction_id", String(32), nullable=False),
    Column("sequence", Integer, nullable=False),
    Column("event_id", String(32), nullable=False),
    Column("success", Boolean, nullable=False),
    Column("received_at", UtcDateTime(), nullable=False),
    PrimaryKeyConstraint("transaction_id", "sequence"),
)

discovery_events = Table(
    "discovery_events",
    metadata,
    Column("event_id", String(32), primary_key=True),
    Column("device_ref", String(64), nullable=False, index=True),
    Column("service_address", String(255), nullable=False),
    Column("registered_at", UtcDateTime(), nullable=False),
)

discovery_sessions = Table(
    "discovery_sessions",
    metadata,
    Column("transaction_id", String(32), primary_key=True),
    Column("server_challenge", LargeBinary(16), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    Column("used", Boolean, nullable=False),
)
