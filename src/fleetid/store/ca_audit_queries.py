"""The SQL of the authority's audit log (``fleetid.authority.ca_audit``): whose key names the log,
and the turn a writer takes before it appends."""

from __future__ import annotations

from typing import Final

from sqlalchemy import Connection, Engine, select, update

from fleetid.store.schema import CaRole, ca_keys, counters

__all__ = ["first_root_key_id", "take_audit_turn"]

# Bumping the counter row locks it until the transaction ends: appends take turns.
_TAKE_TURN: Final = (
    update(counters).where(counters.c.name == "audit").values(value=counters.c.value + 1)
)
_FIRST_ROOT: Final = (
    select(ca_keys.c.subject_key_id)
    .where(ca_keys.c.role == str(CaRole.ROOT))
    .order_by(ca_keys.c.generation)
    .limit(1)
)


def first_root_key_id(engine: Engine) -> bytes | None:
    """The subject key identifier of the authority's first root (generation 1), if recorded."""
    with engine.connect() as connection:
        found = connection.execute(_FIRST_ROOT).scalar_one_or_none()
    return None if found is None else bytes(found)


def take_audit_turn(connection: Connection) -> None:
    """Wait for, and hold until ``connection``'s transaction ends, the right to append."""
    connection.execute(_TAKE_TURN)
