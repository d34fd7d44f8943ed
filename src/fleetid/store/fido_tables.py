"""FIDO authenticators: the metadata store's BLOBs and models, and the operators' credentials.

* ``fido_metadata_blobs``: one row per FIDO MDS3 BLOB loaded (its serial ``no``, nextUpdate and
  digest), so that a BLOB numbered at or below the newest is refused (MDS3 §3.2).
* ``fido_authenticators``: one row per authenticator model of the newest BLOB: its AAGUID (or, for
  a U2F model, an attestation certificate key identifier), its latest status report and the PEM
  bundle of its attestation root certificates.
* ``fido_challenges``: the registration challenges the authority issued (WebAuthn §13.4.3),
  each single use.
* ``fido_operator_credentials``: the WebAuthn credentials registered for device operators.

Revision 0010 creates the tables.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
)

from fleetid.store.schema import UtcDateTime, metadata

__all__ = [
    "fido_authenticators",
    "fido_challenges",
    "fido_metadata_blobs",
    "fido_operator_credentials",
]

fido_metadata_blobs = Table(
    "fido_metadata_blobs",
    metadata,
    Column("serial", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("next_update", UtcDateTime, nullable=False),
    Column("loaded_at", UtcDateTime, nullable=False),
    Column("sha256", LargeBinary(32), nullable=False),
)

fido_authenticators = Table(
    "fido_authenticators",
    metadata,
    # An AAGUID in its 36-character form, or "ski:" and a hex attestation certificate key id.
    Column("model", String(80), primary_key=True),
    Column("description", String(200), nullable=False),
    Column("status", String(48), nullable=False),
    Column("status_effective", String(10), nullable=True),  # an ISO 8601 date, as MDS3 gives it
    Column("roots_pem", Text, nullable=False),
    Column("blob_serial", BigInteger, nullable=False),
)

fido_challenges = Table(
    "fido_challenges",
    metadata,
    Column("challenge", LargeBinary(32), primary_key=True),
    Column("operator", String(128), nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("used_at", UtcDateTime, nullable=True),
)

fido_operator_credentials = Table(
    "fido_operator_credentials",
    metadata,
    Column("credential_id", LargeBinary(1023), primary_key=True),
    Column("operator", String(128), nullable=False, index=True),
    Column("aaguid", String(36), nullable=False),
    Column("fmt", String(16), nullable=False),
    Column("public_key", LargeBinary, nullable=False),  # the COSE_Key
    Column("sign_count", BigInteger, nullable=False),
    Column("registered_at", UtcDateTime, nullable=False),
)
