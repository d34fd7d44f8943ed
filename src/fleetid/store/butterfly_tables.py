"""The butterfly issuance queue (SQLAlchemy Core): the RA's per-certificate requests waiting for
the pseudonym CA's workers, and what the CA keeps of each certificate it issued.

``butterfly_work`` holds one row per (batch, i, j): the RA's request in its parts (the device's
COER EeRaCertRequest, the two COER EncryptedPlv) and, once issued, the CA's answer encrypted to
the cocoon key. ``butterfly_issued`` is the CA's record of each certificate (HashedId8, period,
the LAs' chain references). It names no request: nothing in the CA's rows points back at the
RA's. A row is answered at most once: the answer is written only where none is (and the
claim's transaction fails otherwise). ``delivered_at`` (Time32, Alembic 0013) is when the
device first downloaded the row's batch; delivered rows are pruned after a retention period.

Workers claim rows with ``SELECT ... FOR UPDATE SKIP LOCKED`` and write the answer and the
record in the same transaction, so a worker killed mid-batch leaves its rows unanswered and
unlocked for the next one (``fleetid.store.butterfly_queue``).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Integer,
    LargeBinary,
    Table,
    UniqueConstraint,
)

from fleetid.store.metadata import metadata

__all__ = ["butterfly_issued", "butterfly_work"]


butterfly_work = Table(
    "butterfly_work",
    metadata,
    Column("request_id", LargeBinary(16), primary_key=True),
    Column("batch_id", LargeBinary(8), nullable=False, index=True),
    Column("i", Integer, nullable=False),
    Column("j", BigInteger, nullable=False),
    Column("implicit", Boolean, nullable=False),
    Column("caterpillar", LargeBinary, nullable=False),
    Column("plv1", LargeBinary, nullable=False),
    Column("plv2", LargeBinary, nullable=False),
    Column("response", LargeBinary, nullable=True),
    Column("delivered_at", BigInteger, nullable=True, index=True),  # Time32, first download
    UniqueConstraint("batch_id", "i", "j", name="uq_butterfly_work_batch_i_j"),
)

butterfly_issued = Table(
    "butterfly_issued",
    metadata,
    Column("certificate_id", LargeBinary(8), primary_key=True),
    Column("i", Integer, nullable=False),
    Column("chain_reference1", LargeBinary, nullable=False),
    Column("chain_reference2", LargeBinary, nullable=False),
)
