"""The operator credentials' rows (``operator_credentials_table``): recorded at issuance, read on
every admin request, revoked by a security officer. Each write is an audit-log event
(``ca.operator-credential``) in the transaction that makes it; the body names the credential,
never a key."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, insert, select, update

from fleetid.errors import NotFoundError, PolicyError
from fleetid.store.engine import Engine
from fleetid.store.event_kinds import EventKind
from fleetid.store.operator_credentials_table import operator_credentials
from fleetid.store.repositories import CaEvent, Repositories, normalise_serial

__all__ = [
    "OperatorCredential",
    "credential",
    "credentials",
    "find_credential",
    "list_credentials",
    "record_credential",
    "revoke",
]


@dataclass(frozen=True, kw_only=True)
class OperatorCredential:
    serial: str
    name: str
    role: str
    certificate: bytes
    issued_at: datetime
    not_after: datetime
    revoked_at: datetime | None
    revoked_by: str | None


def _record(row: object) -> OperatorCredential:
    values = dict(row._mapping)  # type: ignore[attr-defined]
    values["certificate"] = bytes(values["certificate"])
    return OperatorCredential(**values)


def credential(connection: Connection, serial: str) -> OperatorCredential | None:
    """The credential of ``serial`` (hex, any case, colons allowed), if it was issued."""
    query = select(operator_credentials).where(
        operator_credentials.c.serial == normalise_serial(serial)
    )
    row = connection.execute(query).one_or_none()
    return None if row is None else _record(row)


def credentials(connection: Connection) -> list[OperatorCredential]:
    """Every credential, newest first."""
    query = select(operator_credentials).order_by(
        operator_credentials.c.issued_at.desc(), operator_credentials.c.serial
    )
    return [_record(row) for row in connection.execute(query)]


def find_credential(engine: Engine, serial: str) -> OperatorCredential | None:
    """``credential`` on a connection of its own (each admin request's authentication)."""
    with engine.connect() as connection:
        return credential(connection, serial)


def list_credentials(engine: Engine) -> list[OperatorCredential]:
    with engine.connect() as connection:
        return credentials(connection)


def record_credential(tx: Repositories, issued: OperatorCredential, *, by: dict[str, str]) -> None:
    """Record a credential the operator CA just signed, and its audit event."""
    tx.connection.execute(insert(operator_credentials).values(**issued.__dict__))
    tx.events.append(
        CaEvent(
            kind=EventKind.CA_OPERATOR_CREDENTIAL,
            serial=None,
            body={
                "action": "issued",
                "credential": issued.serial,
                "name": issued.name,
                "role": issued.role,
                "not_after": issued.not_after.isoformat(),
                "operator": by,
            },
        )
    )


def revoke(
    tx: Repositories, serial: str, now: datetime, *, by: dict[str, str]
) -> OperatorCredential:
    """Revoke the credential ``serial`` at ``now``; unknown: ``NotFoundError``; revoked already:
    ``PolicyError``."""
    found = credential(tx.connection, serial)
    if found is None:
        raise NotFoundError(f"the operator CA issued no credential {serial}")
    result = tx.connection.execute(
        update(operator_credentials)
        .where(
            operator_credentials.c.serial == found.serial,
            operator_credentials.c.revoked_at.is_(None),
        )
        .values(revoked_at=now, revoked_by=by.get("name") or by.get("via", "local"))
    )
    if result.rowcount != 1:
        raise PolicyError(f"operator credential {found.serial} is revoked already")
    tx.events.append(
        CaEvent(
            kind=EventKind.CA_OPERATOR_CREDENTIAL,
            serial=None,
            body={
                "action": "revoked",
                "credential": found.serial,
                "name": found.name,
                "revoked_at": now.isoformat(),
                "operator": by,
            },
        )
    )
    revoked = credential(tx.connection, found.serial)
    assert revoked is not None  # noqa: S101 - updated in this transaction
    return revoked
