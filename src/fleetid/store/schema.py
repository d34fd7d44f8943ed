"""The authority's relational schema (SQLAlchemy 2 Core), and the one ``metadata`` for every table.

Every fact is a typed column; there are no key/value blobs, so revoking one certificate among
millions is one indexed ``UPDATE`` of one row. Indexes cover the fleet's questions: by serial
(unique), by device, by status and by expiry.

``metadata`` (``fleetid.store.metadata``) is the one every table registers on: the factory's
(audit log, line manifest) and the V2X authorities' tables are defined on it in their own modules,
imported here, so that Alembic migrates one database with one history (``fleetid.store.migrate``).

Conventions:

* ``serial`` is the certificate serial number as 40 lowercase hex digits: 20 octets drawn at
  random with the top bit cleared, so that the INTEGER is positive and at most 20 octets
  (RFC 5280 §4.1.2.2). Its UNIQUE constraint is what makes serials unique by construction.
* Times are ``UtcDateTime``: timezone-aware UTC in and out, on SQLite and PostgreSQL alike.
* Status and reason columns hold short fixed vocabularies (``CertificateStatus``, RFC 5280 reason
  names), checked by constraints.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

from fleetid.store import auditlog_table, manifest_table, v2x_tables
from fleetid.store.metadata import metadata

__all__ = [
    "REASONS",
    "SERIAL_HEX_LENGTH",
    "CaRole",
    "CertificateStatus",
    "DeviceStatus",
    "RevocationReason",
    "UtcDateTime",
    "ca_keys",
    "certificates",
    "counters",
    "devices",
    "enrolment_challenges",
    "enrolment_tokens",
    "metadata",
    "revocation_events",
]

SERIAL_HEX_LENGTH = 40  # 20 octets, RFC 5280 §4.1.2.2


class RevocationReason(enum.StrEnum):
    """RFC 5280 §5.3.1 CRLReason names, as the store keeps them; value 7 is unused and so absent.
    ``removeFromCRL`` is only ever a delta CRL entry (a release from hold), never a revocation's
    reason."""

    UNSPECIFIED = "unspecified"
    KEY_COMPROMISE = "keyCompromise"
    CA_COMPROMISE = "cACompromise"
    AFFILIATION_CHANGED = "affiliationChanged"
    SUPERSEDED = "superseded"
    CESSATION_OF_OPERATION = "cessationOfOperation"
    CERTIFICATE_HOLD = "certificateHold"
    REMOVE_FROM_CRL = "removeFromCRL"
    PRIVILEGE_WITHDRAWN = "privilegeWithdrawn"
    AA_COMPROMISE = "aACompromise"


#: The reason names the constraints allow, in CRLReason order.
REASONS = tuple(str(reason) for reason in RevocationReason)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC ``datetime``; SQLite stores it naive, PostgreSQL as ``timestamptz``."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; pass timezone-aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)  # noqa: S101 - the DB-API returns datetimes here
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class CertificateStatus(enum.StrEnum):
    VALID = "valid"
    REVOKED = "revoked"


class DeviceStatus(enum.StrEnum):
    PENDING = "pending"  # a token or challenge exists; nothing issued yet
    ENROLLED = "enrolled"
    REVOKED = "revoked"
    TRANSFERRED = "transferred"


class CaRole(enum.StrEnum):
    ROOT = "root"
    ISSUING = "issuing"


def _in(column: str, values: tuple[str, ...] | type[enum.StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"


# One row per CA key generation: the fleet root and the issuing CAs, old and new.
ca_keys = Table(
    "ca_keys",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("role", String(16), nullable=False),
    Column("generation", Integer, nullable=False),
    Column("hsm_label", String(64), nullable=False, unique=True),
    Column("subject", Text, nullable=False),  # RFC 4514 string
    Column("subject_key_id", LargeBinary(20), nullable=False),
    Column("not_before", UtcDateTime, nullable=False),
    Column("not_after", UtcDateTime, nullable=False),
    Column("active", Integer, nullable=False),  # 1 for the generation that issues now
    Column("certificate", LargeBinary, nullable=False),  # DER
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("role", "generation", name="uq_ca_keys_role_generation"),
    CheckConstraint(_in("role", CaRole), name="role"),
    CheckConstraint("active IN (0, 1)", name="active"),
)

devices = Table(
    "devices",
    metadata,
    Column("device_id", String(128), primary_key=True),
    Column("status", String(16), nullable=False),
    # The factory identity, when the device enrolled with one (attestation provisioner).
    Column("idevid_serial", String(64), nullable=True),
    Column("idevid_key_sha256", LargeBinary(32), nullable=True),
    Column("provisioner", String(32), nullable=True),  # type key of the enrolling provisioner
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    CheckConstraint(_in("status", DeviceStatus), name="status"),
)
Index("ix_devices_status", devices.c.status)
Index("ix_devices_idevid_serial", devices.c.idevid_serial)

certificates = Table(
    "certificates",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("serial", String(SERIAL_HEX_LENGTH), nullable=False),
    Column("issuer_id", Integer, ForeignKey("ca_keys.id"), nullable=False),
    Column("device_id", String(128), ForeignKey("devices.device_id"), nullable=True),
    Column("profile", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("subject", Text, nullable=False),
    Column("public_key_sha256", LargeBinary(32), nullable=False),  # of the DER SPKI
    Column("not_before", UtcDateTime, nullable=False),
    Column("not_after", UtcDateTime, nullable=False),
    Column("issued_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime, nullable=True),
    Column("revocation_reason", String(24), nullable=True),
    # RFC 5280 §5.3.2: when the key is known or suspected compromised, if the operator said.
    Column("invalidity_date", UtcDateTime, nullable=True),
    # Monotonic across the authority: the sequence number of the latest change of revocation
    # state (CRL/OCSP publishers fetch "everything after N"). A certificate released from hold
    # is ``valid`` again with ``revocation_seq`` and ``revoked_at`` (the release's) kept and no
    # reason: the delta CRLs list it as removeFromCRL.
    Column("revocation_seq", BigInteger, nullable=True, unique=True),
    Column("superseded_by", BigInteger, ForeignKey("certificates.id"), nullable=True),
    Column("der", LargeBinary, nullable=False),
    UniqueConstraint("serial", name="uq_certificates_serial"),
    CheckConstraint(_in("status", CertificateStatus), name="status"),
    CheckConstraint(
        f"revocation_reason IS NULL OR {_in('revocation_reason', REASONS)}", name="reason"
    ),
    CheckConstraint(
        "(status = 'revoked') = (revoked_at IS NOT NULL AND revocation_reason IS NOT NULL"
        " AND revocation_seq IS NOT NULL)",
        name="revocation_complete",
    ),
    CheckConstraint(f"length(serial) = {SERIAL_HEX_LENGTH}", name="serial_length"),
)
Index("ix_certificates_device_id", certificates.c.device_id)
Index("ix_certificates_status", certificates.c.status)
Index("ix_certificates_not_after", certificates.c.not_after)
Index("ix_certificates_public_key_sha256", certificates.c.public_key_sha256)

# The history of every certificate's revocation state, one row per change, keyed by the sequence
# number the change took (``certificates.revocation_seq`` is that of its latest change): a
# revocation, an escalation of its reason, or a release from hold (``removeFromCRL``, RFC 5280
# §5.3.1). ``revoked_at`` is the revocation date in force after the change (a release: its time).
# The registry answers "the state at watermark W" of a certificate changed after W from here.
revocation_events = Table(
    "revocation_events",
    metadata,
    Column("sequence", BigInteger, primary_key=True, autoincrement=False),
    Column(
        "certificate_id",
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("certificates.id"),
        nullable=False,
    ),
    Column("reason", String(24), nullable=False),
    Column("revoked_at", UtcDateTime, nullable=False),
    Column("invalidity_date", UtcDateTime, nullable=True),
    Column("recorded_at", UtcDateTime, nullable=False),
    CheckConstraint(_in("reason", REASONS), name="reason"),
)
Index(
    "ix_revocation_events_certificate_id",
    revocation_events.c.certificate_id,
    revocation_events.c.sequence,
)

# Single-use nonces for attestation-gated enrolment (the attestation provisioner binds to them).
enrolment_challenges = Table(
    "enrolment_challenges",
    metadata,
    Column("nonce", LargeBinary(32), primary_key=True),
    Column("device_id", String(128), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("used_at", UtcDateTime, nullable=True),
)
Index("ix_enrolment_challenges_expires_at", enrolment_challenges.c.expires_at)

# One-time EST credentials (RFC 7030 §3.2.3 HTTP Basic): ``username`` is public, the password is
# stored only as SHA-256 (it is 256 random bits, so a slow KDF adds nothing).
enrolment_tokens = Table(
    "enrolment_tokens",
    metadata,
    Column("username", String(64), primary_key=True),
    Column("device_id", String(128), nullable=False),
    Column("secret_sha256", LargeBinary(32), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("used_at", UtcDateTime, nullable=True),
    Column("certificate_id", BigInteger, ForeignKey("certificates.id"), nullable=True),
)
Index("ix_enrolment_tokens_device_id", enrolment_tokens.c.device_id)
Index("ix_enrolment_tokens_expires_at", enrolment_tokens.c.expires_at)

# Named monotonic counters (``revocation``); bumped with UPDATE … RETURNING under a row lock.
counters = Table(
    "counters",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

# The tables defined in their own modules are on ``metadata`` already; importing those modules
# above is what registers them before Alembic or ``create_all`` reads ``metadata.tables``.
# crl_table, butterfly_tables and the tables after them use UtcDateTime, defined above, so
# they are imported last.
from fleetid.store import (  # noqa: E402
    butterfly_state_tables,
    butterfly_tables,
    clone_sightings_table,
    crl_table,
    fido_tables,
    fleet_sim_tables,
    operator_credentials_table,
    package_tables,
)

_REGISTERED = (
    auditlog_table,
    manifest_table,
    v2x_tables,
    crl_table,
    butterfly_tables,
    butterfly_state_tables,
    fido_tables,
    package_tables,
    clone_sightings_table,
    fleet_sim_tables,
    operator_credentials_table,
)
