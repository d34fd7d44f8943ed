"""The V2X authorities' tables (SQLAlchemy Core), on the store's one ``metadata``.

The EA and the AA are different operators with different databases (ETSI TS 102 941 §4.2.2).
Every database is migrated by the one Alembic history (revision 0005 creates these tables), so an
EA's database has the AA's tables too, empty: what keeps each operator's rows in its own database
is that each authority opens its own engine and its repository (``fleetid.store.v2x_repository``)
names only its own tables (``EA_TABLES``, ``AA_TABLES``, ``CA_TABLES``). What each stores is the
privacy design (docs/privacy.md):

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

import enum

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Integer,
    LargeBinary,
    String,
    Table,
)

from fleetid.store.metadata import metadata

__all__ = [
    "AA_TABLES",
    "CA_TABLES",
    "EA_TABLES",
    "PublicationKind",
    "V2xCaRole",
    "aa_counters",
    "aa_issued_tickets",
    "aa_seen_requests",
    "ca_certificates",
    "ca_publications",
    "ea_canonical_keys",
    "ea_counters",
    "ea_enrolment_credentials",
    "ea_seen_requests",
]


class V2xCaRole(enum.StrEnum):
    """What a certificate of the Root CA's registry is (``v2x_ca_certificates.role``)."""

    ROOT = "root"
    EA = "ea"
    AA = "aa"


class PublicationKind(enum.StrEnum):
    """What the Root CA publishes (``v2x_ca_publications.kind``): TS 102 941 §6.3.3, §6.3.4."""

    CTL = "ctl"
    CRL = "crl"


# --------------------------------------------------------------------------------- the EA

#: Registered by the provisioning line: the vehicle's canonical key, by its canonical id.
ea_canonical_keys = Table(
    "v2x_ea_canonical_keys",
    metadata,
    Column("its_id", LargeBinary, primary_key=True),
    Column("curve", String(32), nullable=False),
    Column("public_key", LargeBinary, nullable=False),  # SEC 1 compressed point
    Column("active", Boolean, nullable=False, default=True),
)

#: The ECs the EA issued; ``revoked`` makes every later authorization validation fail.
ea_enrolment_credentials = Table(
    "v2x_ea_enrolment_credentials",
    metadata,
    Column("ec_id", LargeBinary, primary_key=True),  # HashedId8 of the EC
    Column("its_id", LargeBinary, nullable=False, index=True),
    Column("certificate", LargeBinary, nullable=False),
    Column("not_after", BigInteger, nullable=False),  # Time32
    Column("revoked", Boolean, nullable=False, default=False),
    Column("superseded", Boolean, nullable=False, default=False),
)

ea_seen_requests = Table(
    "v2x_ea_seen_requests",
    metadata,
    Column("request_hash", LargeBinary, primary_key=True),
    Column("expires", BigInteger, nullable=False),  # Time32
)

ea_counters = Table(
    "v2x_ea_counters",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Integer, nullable=False),
)

# --------------------------------------------------------------------------------- the AA

aa_issued_tickets = Table(
    "v2x_aa_issued_tickets",
    metadata,
    Column("at_id", LargeBinary, primary_key=True),  # HashedId8 of the AT
    Column("certificate", LargeBinary, nullable=False),
    sqlite_with_rowid=False,
)

aa_seen_requests = Table(
    "v2x_aa_seen_requests",
    metadata,
    Column("request_hash", LargeBinary, primary_key=True),
    Column("expires", BigInteger, nullable=False),
    sqlite_with_rowid=False,
)

aa_counters = Table(
    "v2x_aa_counters",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Integer, nullable=False),
)

# --------------------------------------------------------------------------------- the root CA

ca_certificates = Table(
    "v2x_ca_certificates",
    metadata,
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
    metadata,
    Column("kind", String(8), primary_key=True),  # ctl | crl
    Column("sequence", Integer, primary_key=True),
    Column("encoded", LargeBinary, nullable=False),
)

#: Each operator's tables: what its repository names, and all its database holds of V2X rows.
EA_TABLES = (ea_canonical_keys, ea_enrolment_credentials, ea_seen_requests, ea_counters)
AA_TABLES = (aa_issued_tickets, aa_seen_requests, aa_counters)
CA_TABLES = (ca_certificates, ca_publications)
