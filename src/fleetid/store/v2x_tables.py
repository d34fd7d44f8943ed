"""The V2X authorities' tables (SQLAlchemy Core), one MetaData per operator.

The EA and the AA are different operators with different databases (ETSI TS 102 941 §4.2.2):
``ea_metadata`` and ``aa_metadata`` are created separately, so that neither can hold the other's
rows by accident. What each stores is the privacy design (docs/privacy.md):

* the EA knows vehicles: canonical keys registered at manufacture and the ECs it issued. It keeps
  nothing per authorization validation (no EC, no time, no keyTag), only aggregate counters.
* the AA keeps the HashedId8 and bytes of each AT it issued (accountability), in a table without
  rowid ordered by that hash, so the physical order says nothing about the issuing order. It keeps
  no EC, no vehicle, no keyTag, no request time.
* both keep the hashes of recently seen requests for replay detection; a request hash is the hash
  of ciphertext under a fresh key and names nobody; rows are dropped once past the freshness
  window.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
)

__all__ = [
    "aa_counters",
    "aa_issued_tickets",
    "aa_metadata",
    "aa_seen_requests",
    "ca_certificates",
    "ca_metadata",
    "ca_publications",
    "ea_canonical_keys",
    "ea_counters",
    "ea_enrolment_credentials",
    "ea_metadata",
    "ea_seen_requests",
]

# --------------------------------------------------------------------------------- the EA

ea_metadata = MetaData()

#: Registered by the provisioning line: the vehicle's canonical key, by its canonical id.
ea_canonical_keys = Table(
    "v2x_ea_canonical_keys",
    ea_metadata,
    Column("its_id", LargeBinary, primary_key=True),
    Column("curve", String(32), nullable=False),
    Column("public_key", LargeBinary, nullable=False),  # SEC 1 compressed point
    Column("active", Boolean, nullable=False, default=True),
)

#: The ECs the EA issued; ``revoked`` makes every later authorization validation fail.
ea_enrolment_credentials = Table(
    "v2x_ea_enrolment_credentials",
    ea_metadata,
    Column("ec_id", LargeBinary, primary_key=True),  # HashedId8 of the EC
    Column("its_id", LargeBinary, nullable=False, index=True),
    Column("certificate", LargeBinary, nullable=False),
    Column("not_after", BigInteger, nullable=False),  # Time32
    Column("revoked", Boolean, nullable=False, default=False),
    Column("superseded", Boolean, nullable=False, default=False),
)

ea_seen_requests = Table(
    "v2x_ea_seen_requests",
    ea_metadata,
    Column("request_hash", LargeBinary, primary_key=True),
    Column("expires", BigInteger, nullable=False),  # Time32
)

ea_counters = Table(
    "v2x_ea_counters",
    ea_metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Integer, nullable=False),
)

# --------------------------------------------------------------------------------- the AA

aa_metadata = MetaData()

aa_issued_tickets = Table(
    "v2x_aa_issued_tickets",
    aa_metadata,
    Column("at_id", LargeBinary, primary_key=True),  # HashedId8 of the AT
    Column("certificate", LargeBinary, nullable=False),
    sqlite_with_rowid=False,
)

aa_seen_requests = Table(
    "v2x_aa_seen_requests",
    aa_metadata,
    Column("request_hash", LargeBinary, primary_key=True),
    Column("expires", BigInteger, nullable=False),
    sqlite_with_rowid=False,
)

aa_counters = Table(
    "v2x_aa_counters",
    aa_metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Integer, nullable=False),
)

# --------------------------------------------------------------------------------- the root CA

ca_metadata = MetaData()

ca_certificates = Table(
    "v2x_ca_certificates",
    ca_metadata,
    Column("cert_id", LargeBinary, primary_key=True),  # HashedId8
    Column("role", String(8), nullable=False),  # root | ea | aa
    Column("name", String(255), nullable=False),
    Column("certificate", LargeBinary, nullable=False),
    Column("access_point", String(255), nullable=True),
    Column("revoked", Boolean, nullable=False, default=False),
)

#: Signed CTLs and CRLs as published (the latest of each kind is served).
ca_publications = Table(
    "v2x_ca_publications",
    ca_metadata,
    Column("kind", String(8), primary_key=True),  # ctl | crl
    Column("sequence", Integer, primary_key=True),
    Column("encoded", LargeBinary, nullable=False),
)
