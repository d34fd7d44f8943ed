"""The audit log's two tables: the entries (the Merkle tree's leaves) and its signed checkpoints.

Both are append-only by contract: the log inserts rows and never updates or deletes them. The
primary keys (``seq``, ``tree_size``) are what stops two writers from forking the log: a second
entry at the same position, or a second checkpoint at the same size, is a unique-key violation.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, LargeBinary, String, Table, Text

from fleetid.store.metadata import metadata

__all__ = ["audit_checkpoints", "audit_entries"]


audit_entries = Table(
    "audit_log_entries",
    metadata,
    # 0-based leaf index in the Merkle tree.
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    # RFC 3339 UTC timestamp as written into the leaf, kept as text so it round-trips exactly.
    Column("logged_at", String(40), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("serial", String(128), nullable=True),
    # RFC 8785 canonical JSON of the event body.
    Column("body", Text, nullable=False),
    # SHA-256(0x00 || leaf) as stored when appended; ``verify_all`` recomputes it.
    Column("leaf_hash", LargeBinary(32), nullable=False),
)
Index("ix_audit_log_entries_serial", audit_entries.c.serial)

audit_checkpoints = Table(
    "audit_log_checkpoints",
    metadata,
    Column("tree_size", BigInteger, primary_key=True, autoincrement=False),
    Column("root_hash", LargeBinary(32), nullable=False),
    # The whole C2SP signed note, exactly as signed.
    Column("note", Text, nullable=False),
)
