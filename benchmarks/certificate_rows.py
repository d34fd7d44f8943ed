"""Bulk-loading a fleet's certificate rows straight into an authority's SQLite store, for the
revocation benchmarks (millions of rows through the store's repositories would time the loading,
not what the benchmark measures).

A row follows ``fleetid.store.schema.certificates``; a revoked row also gets its entry in
``revocation_events``, the history the registry reads a certificate's state from, as
``Certificates.revoke`` would write it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Final

from fleetid.authority.fleet_ca import FleetCa

__all__ = ["COLUMNS", "load", "naive"]

COLUMNS: Final = (
    "serial",
    "issuer_id",
    "profile",
    "status",
    "subject",
    "public_key_sha256",
    "not_before",
    "not_after",
    "issued_at",
    "revoked_at",
    "revocation_reason",
    "revocation_seq",
    "der",
)
_INSERT: Final = (
    f"INSERT INTO certificates ({', '.join(COLUMNS)}) "  # noqa: S608 - constants
    f"VALUES ({', '.join('?' for _ in COLUMNS)})"
)
_EVENTS: Final = (
    "INSERT INTO revocation_events (sequence, certificate_id, reason, revoked_at, recorded_at)"
    " SELECT revocation_seq, id, revocation_reason, revoked_at, revoked_at FROM certificates"
    " WHERE revocation_seq IS NOT NULL"
)
_COUNTER: Final = "UPDATE counters SET value = ? WHERE name = 'revocation'"
_BATCH: Final = 50_000


def naive(t: datetime) -> str:
    """A timestamp as ``UtcDateTime`` stores it on SQLite."""
    return t.replace(tzinfo=None).isoformat(" ")


def load(ca: FleetCa, rows: Iterable[tuple[object, ...]]) -> int:
    """Insert ``rows`` (in ``COLUMNS`` order), the revocation events of the revoked ones and the
    revocation counter, in one transaction, into a store that holds no revoked certificate yet.
    Returns how many rows are revoked."""
    revoked = 0
    raw = ca.store.engine.raw_connection()
    try:
        cursor = raw.cursor()
        batch: list[tuple[object, ...]] = []
        for row in rows:
            revoked += row[3] == "revoked"
            batch.append(row)
            if len(batch) == _BATCH:
                cursor.executemany(_INSERT, batch)
                batch = []
        if batch:
            cursor.executemany(_INSERT, batch)
        cursor.execute(_EVENTS)
        cursor.execute(_COUNTER, (revoked,))
        cursor.close()
        raw.commit()
    finally:
        raw.close()
    return revoked
