"""What the butterfly authorities keep between restarts (SQLAlchemy Core; Alembic 0007).

* ``butterfly_ra_devices``: the registration authority's devices, each with its two chain
  tokens (sealed by the LAs, opaque to the RA) and whether misbehaviour blocked it;
* ``butterfly_ra_seen_requests``, ``butterfly_la_seen_requests``,
  ``butterfly_pca_seen_requests``: the hashes of recently accepted requests of the RA, an LA and
  the pseudonym CA (replay refusal survives a restart); the RA's per-certificate requests and
  the CA's answers are the rows of ``butterfly_work`` (Alembic 0006);
* ``butterfly_la_chains``: a linkage authority's chains, the initial seed ls(0) and the latest
  seed ls(at) sealed (AES-GCM, ``fleetid.crypto.sealed_state``), never in the clear;
* ``butterfly_secrets``: an authority's symmetric keys and peer keys, each sealed.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Integer, LargeBinary, String, Table

from fleetid.store.metadata import metadata

__all__ = [
    "butterfly_la_chains",
    "butterfly_la_seen_requests",
    "butterfly_pca_seen_requests",
    "butterfly_ra_devices",
    "butterfly_ra_seen_requests",
    "butterfly_secrets",
]

butterfly_ra_devices = Table(
    "butterfly_ra_devices",
    metadata,
    Column("its_id", LargeBinary, primary_key=True),
    Column("chain1", LargeBinary, nullable=False),
    Column("chain2", LargeBinary, nullable=False),
    Column("blocked", Boolean, nullable=False),
)


def _seen_requests(name: str) -> Table:
    return Table(
        name,
        metadata,
        Column("request_hash", LargeBinary, primary_key=True),
        Column("expires", BigInteger, nullable=False),  # Time32
    )


butterfly_ra_seen_requests = _seen_requests("butterfly_ra_seen_requests")
butterfly_la_seen_requests = _seen_requests("butterfly_la_seen_requests")
butterfly_pca_seen_requests = _seen_requests("butterfly_pca_seen_requests")

butterfly_la_chains = Table(
    "butterfly_la_chains",
    metadata,
    Column("la_id", LargeBinary(2), primary_key=True),
    Column("chain_id", LargeBinary(16), primary_key=True),
    Column("token", LargeBinary, nullable=False),
    Column("initial_seed", LargeBinary, nullable=False),  # sealed ls(0)
    Column("at", Integer, nullable=False),
    Column("seed", LargeBinary, nullable=False),  # sealed ls(at)
)

butterfly_secrets = Table(
    "butterfly_secrets",
    metadata,
    Column("owner", String(32), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("sealed", LargeBinary, nullable=False),
)
