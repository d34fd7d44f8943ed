"""Published X.509 CRLs: one row per full or delta CRL of one shard of one issuing CA, and the
roots' CRLs (shard ``fleetid.revocation.crl.ROOT_SHARD``).

The CRL publisher (``fleetid.revocation.crl``) writes a row per publication and the HTTP route
serves the newest full and delta of a shard from here, so ``fleetid crl publish`` (another
process) and ``fleetid serve`` share one state. ``crl_number`` is one sequence per
(issuer, shard) shared by full and delta CRLs (RFC 5280 §5.2.4); ``watermark`` is the registry
sequence number the CRL covers. Revision 0003 creates the table.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    UniqueConstraint,
)

from fleetid.store.schema import UtcDateTime, metadata

__all__ = ["crl_publications"]

# In the authority's one ``metadata`` (constraint names follow its naming convention).

crl_publications = Table(
    "crl_publications",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("issuer_id", Integer, ForeignKey("ca_keys.id"), nullable=False),
    Column("shard", Integer, nullable=False),
    Column("kind", String(8), nullable=False),  # full | delta
    Column("crl_number", BigInteger, nullable=False),
    Column("base_number", BigInteger, nullable=True),  # delta CRLs: the BaseCRLNumber
    Column("watermark", BigInteger, nullable=False),
    Column("this_update", UtcDateTime, nullable=False),
    Column("next_update", UtcDateTime, nullable=False),
    Column("der", LargeBinary, nullable=False),
    UniqueConstraint(
        "issuer_id", "shard", "crl_number", name="uq_crl_publications_issuer_shard_number"
    ),
    CheckConstraint("kind IN ('full', 'delta')", name="kind"),
    CheckConstraint("(kind = 'delta') = (base_number IS NOT NULL)", name="delta_base"),
)
Index(
    "ix_crl_publications_latest",
    crl_publications.c.issuer_id,
    crl_publications.c.shard,
    crl_publications.c.kind,
    crl_publications.c.crl_number,
)
