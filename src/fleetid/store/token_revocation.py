"""Revoking an enrolment token before it is used (``fleetid token revoke``).

A revoked token is one whose expiry is moved to the moment of revocation: the provisioner's
"expired" refusal then covers it, without a new column or state. Only an unused token that has not
expired can be revoked; the revocation is an audit-log entry (``ca.token`` with ``revoked_at``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from sqlalchemy import bindparam, update

from fleetid.errors import NotFoundError, PolicyError
from fleetid.store.event_kinds import EventKind
from fleetid.store.repositories import CaEvent, Repositories, TokenRecord
from fleetid.store.schema import enrolment_tokens

__all__ = ["revoke_token"]

_EXPIRE: Final = (
    update(enrolment_tokens)
    .where(
        enrolment_tokens.c.username == bindparam("w_username"),
        enrolment_tokens.c.used_at.is_(None),
        enrolment_tokens.c.expires_at > bindparam("w_now"),
    )
    .values(expires_at=bindparam("w_now"))
)


def revoke_token(tx: Repositories, username: str, now: datetime) -> TokenRecord:
    """Expire the unused token ``username`` at ``now``; it can no longer enrol."""
    token = tx.tokens.get(username)
    if token is None:
        raise NotFoundError(f"no enrolment token {username!r}")
    if token.used_at is not None:
        raise PolicyError(
            f"token {username} enrolled {token.device_id} already; revoke the certificate"
        )
    result = tx.connection.execute(_EXPIRE, {"w_username": username, "w_now": now})
    if result.rowcount != 1:
        raise PolicyError(f"token {username} expired at {token.expires_at.isoformat()} already")
    tx.events.append(
        CaEvent(
            kind=EventKind.CA_TOKEN,
            serial=None,
            body={
                "username": username,
                "device_id": token.device_id,
                "revoked_at": now.isoformat(),
            },
        )
    )
    revoked = tx.tokens.get(username)
    assert revoked is not None  # noqa: S101 - updated in this transaction
    return revoked
