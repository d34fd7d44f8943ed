"""How many connections an engine's pool holds, checked out and idle (the metrics read it)."""

from __future__ import annotations

from sqlalchemy.pool import QueuePool

from fleetid.store.engine import Engine

__all__ = ["pool_connections"]


def pool_connections(engine: Engine) -> dict[str, int]:
    """``{"checked_out": n, "idle": m}`` for a queue pool; empty for a pool that keeps none
    (SQLite in memory shares one connection, ``StaticPool``)."""
    pool = engine.pool
    if not isinstance(pool, QueuePool):
        return {}
    return {"checked_out": pool.checkedout(), "idle": pool.checkedin()}
