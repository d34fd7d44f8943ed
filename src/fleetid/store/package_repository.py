"""The preparation and discovery services' records (``fleetid.store.package_tables``).

Every state change of a package is one conditional UPDATE (``WHERE state IN (...)``): two
requests racing for the same transition on SQLite or PostgreSQL see one of them win, so a package
is downloaded once and a notification drives the state machine once. A notification is recorded
by its primary key (transaction, sequence number): a second insert of it fails, whatever the
database.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, case, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from fleetid.store.migrate import ensure_schema
from fleetid.store.package_tables import (
    discovery_events,
    discovery_sessions,
    package_notifications,
    package_transactions,
    packages,
)

__all__ = [
    "DiscoveryEvent",
    "EventRegistration",
    "PackageRecord",
    "PackageRepository",
    "TransactionRecord",
]


@dataclass(frozen=True, kw_only=True)
class PackageRecord:
    """One order and its package, as the preparation service keeps it."""

    event_id: str
    reference: str
    kind: str
    content: bytes | None = field(repr=False)
    binding_sha256: bytes
    cc_hash: bytes | None = field(repr=False)
    state: str
    reason: str | None
    created_at: datetime
    expires_at: datetime
    updated_at: datetime
    transaction_id: str | None = None
    bound: bytes | None = field(default=None, repr=False)
    cc_attempts: int = 0  # wrong confirmation codes so far


@dataclass(frozen=True, kw_only=True)
class TransactionRecord:
    """One ES9+ session: InitiateAuthentication to HandleNotification."""

    transaction_id: str
    server_challenge: bytes
    euicc_challenge: bytes
    expires_at: datetime
    event_id: str | None = None
    notification_key: bytes | None = None  # DER SubjectPublicKeyInfo
    otpk_sha256: bytes | None = None


@dataclass(frozen=True, kw_only=True)
class DiscoveryEvent:
    """An event record: the event ID and the address of the service that holds it."""

    event_id: str
    service_address: str


@dataclass(frozen=True, kw_only=True)
class EventRegistration:
    """ES12 RegisterEvent: the device with discovery reference ``device_ref`` has an event at
    the preparation service at ``service_address``."""

    device_ref: str
    event_id: str
    service_address: str


def _record(cls: Any, row: Any) -> Any:
    mapping = row._mapping
    return cls(**{f.name: mapping[f.name] for f in fields(cls)})


class PackageRepository:
    """The package, transaction, notification and discovery tables of one database."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def create_tables(self) -> None:
        """Bring the database to the schema head (these tables are revision 0008)."""
        ensure_schema(self._engine)

    # --- packages -----------------------------------------------------------------------------

    def add_packages(self, records: Iterable[PackageRecord]) -> None:
        """Insert a batch of packages in one transaction (one commit for the batch)."""
        rows = [{f.name: getattr(r, f.name) for f in fields(r)} for r in records]
        if rows:
            with self._engine.begin() as connection:
                connection.execute(insert(packages), rows)

    def package(self, event_id: str) -> PackageRecord | None:
        with self._engine.connect() as connection:
            row = connection.execute(
                select(packages).where(packages.c.event_id == event_id)
            ).first()
        return None if row is None else _record(PackageRecord, row)

    def released_for(self, references: Iterable[str]) -> dict[tuple[str, bytes], PackageRecord]:
        """The released packages of these order references, by (reference, binding key), in
        one query."""
        wanted = sorted(set(references))
        if not wanted:
            return {}
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(packages).where(
                    packages.c.reference.in_(wanted), packages.c.state == "released"
                )
            ).all()
        found = [_record(PackageRecord, row) for row in rows]
        return {(r.reference, bytes(r.binding_sha256)): r for r in found}

    def packages(self) -> list[PackageRecord]:
        with self._engine.connect() as connection:
            rows = connection.execute(select(packages).order_by(packages.c.created_at)).all()
        return [_record(PackageRecord, row) for row in rows]

    def counts(self) -> dict[str, int]:
        """How many packages are in each state."""
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(packages.c.state, func.count()).group_by(packages.c.state)
            ).all()
        return {str(state): int(count) for state, count in rows}

    def transition(
        self, event_id: str, from_states: Iterable[str], to_state: str, now: datetime, **values: Any
    ) -> bool:
        """Move a package to ``to_state`` if it is in one of ``from_states``; whether it moved."""
        statement = (
            update(packages)
            .where(packages.c.event_id == event_id, packages.c.state.in_(list(from_states)))
            .values(state=to_state, updated_at=now, **values)
        )
        with self._engine.begin() as connection:
            return connection.execute(statement).rowcount == 1

    def count_wrong_code(self, event_id: str, limit: int, reason: str, now: datetime) -> int | None:
        """Count one wrong confirmation code against a released package, and fail it with
        ``reason`` when this is the ``limit``-th, in one conditional UPDATE (the right-hand
        sides read the row as it was, so concurrent attempts are counted one by one and only
        one of them reaches the limit): the attempts so far, or None (nothing written) when
        the package is no longer released."""
        attempts = packages.c.cc_attempts + 1
        locks = attempts >= limit
        statement = (
            update(packages)
            .where(packages.c.event_id == event_id, packages.c.state == "released")
            .values(
                cc_attempts=attempts,
                state=case((locks, "failed"), else_=packages.c.state),
                reason=case((locks, reason), else_=packages.c.reason),
                updated_at=now,
            )
        )
        with self._engine.begin() as connection:
            if connection.execute(statement).rowcount != 1:
                return None
            counted = connection.execute(
                select(packages.c.cc_attempts).where(packages.c.event_id == event_id)
            ).scalar_one()
        return int(counted)

    def mark_downloaded(
        self, event_id: str, transaction_id: str, otpk_sha256: bytes, bound: bytes, now: datetime
    ) -> bool:
        """released → downloaded with the bound package, and the transaction's one-time key, in
        one transaction; False (nothing written) when the package was not released."""
        with self._engine.begin() as connection:
            moved = connection.execute(
                update(packages)
                .where(packages.c.event_id == event_id, packages.c.state == "released")
                .values(
                    state="downloaded", updated_at=now, transaction_id=transaction_id, bound=bound
                )
            ).rowcount
            if moved != 1:
                return False
            connection.execute(
                update(package_transactions)
                .where(package_transactions.c.transaction_id == transaction_id)
                .values(otpk_sha256=otpk_sha256)
            )
        return True

    def settle(
        self,
        transaction_id: str,
        sequence: int,
        event_id: str,
        *,
        state: str,
        reason: str | None,
        now: datetime,
    ) -> str:
        """Record a notification and move its package downloaded → ``state``, in one
        transaction: ``"settled"``; ``"replayed"`` when (transaction, sequence) was recorded
        before; ``"refused"`` (nothing written) when the package is not downloaded in that
        transaction."""
        try:
            with self._engine.begin() as connection:
                connection.execute(
                    insert(package_notifications),
                    {
                        "transaction_id": transaction_id,
                        "sequence": sequence,
                        "event_id": event_id,
                        "success": state == "installed",
                        "received_at": now,
                    },
                )
                moved = connection.execute(
                    update(packages)
                    .where(
                        packages.c.event_id == event_id,
                        packages.c.state == "downloaded",
                        packages.c.transaction_id == transaction_id,
                    )
                    .values(state=state, updated_at=now, reason=reason)
                ).rowcount
                if moved != 1:
                    connection.rollback()
                    return "refused"
        except IntegrityError:
            return "replayed"
        return "settled"

    # --- transactions -------------------------------------------------------------------------

    def add_transaction(self, record: TransactionRecord) -> None:
        values = {f.name: getattr(record, f.name) for f in fields(record)}
        with self._engine.begin() as connection:
            connection.execute(insert(package_transactions), values)

    def transaction(self, transaction_id: str) -> TransactionRecord | None:
        with self._engine.connect() as connection:
            row = connection.execute(
                select(package_transactions).where(
                    package_transactions.c.transaction_id == transaction_id
                )
            ).first()
        return None if row is None else _record(TransactionRecord, row)

    def update_transaction(self, transaction_id: str, **values: Any) -> None:
        with self._engine.begin() as connection:
            connection.execute(
                update(package_transactions)
                .where(package_transactions.c.transaction_id == transaction_id)
                .values(**values)
            )

    # --- discovery ----------------------------------------------------------------------------

    def register_events(self, events: Iterable[EventRegistration], now: datetime) -> None:
        """Index a batch of events in one transaction (one commit for the batch)."""
        rows = [
            {
                "event_id": e.event_id,
                "device_ref": e.device_ref,
                "service_address": e.service_address,
                "registered_at": now,
            }
            for e in events
        ]
        if rows:
            with self._engine.begin() as connection:
                connection.execute(insert(discovery_events), rows)

    def delete_event(self, event_id: str) -> bool:
        with self._engine.begin() as connection:
            statement = delete(discovery_events).where(discovery_events.c.event_id == event_id)
            return connection.execute(statement).rowcount == 1

    def events_for(self, device_ref: str) -> list[DiscoveryEvent]:
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(discovery_events.c.event_id, discovery_events.c.service_address)
                .where(discovery_events.c.device_ref == device_ref)
                .order_by(discovery_events.c.registered_at, discovery_events.c.event_id)
            ).all()
        return [DiscoveryEvent(event_id=r[0], service_address=r[1]) for r in rows]

    def all_events(self) -> list[tuple[str, DiscoveryEvent]]:
        """Every event record with its device reference (the operator's view)."""
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(
                    discovery_events.c.device_ref,
                    discovery_events.c.event_id,
                    discovery_events.c.service_address,
                ).order_by(discovery_events.c.registered_at, discovery_events.c.event_id)
            ).all()
        return [(r[0], DiscoveryEvent(event_id=r[1], service_address=r[2])) for r in rows]

    def add_discovery_session(
        self, transaction_id: str, server_challenge: bytes, expires_at: datetime
    ) -> None:
        with self._engine.begin() as connection:
            connection.execute(
                insert(discovery_sessions),
                {
                    "transaction_id": transaction_id,
                    "server_challenge": server_challenge,
                    "expires_at": expires_at,
                    "used": False,
                },
            )

    def spend_discovery_session(self, transaction_id: str, now: datetime) -> bytes | None:
        """The session's challenge, spent; None when unknown, used or expired."""
        table = discovery_sessions
        with self._engine.begin() as connection:
            row = connection.execute(
                select(table.c.server_challenge).where(
                    table.c.transaction_id == transaction_id,
                    table.c.used.is_(False),
                    table.c.expires_at > now,
                )
            ).first()
            if row is None:
                return None
            spent = connection.execute(
                update(table)
                .where(table.c.transaction_id == transaction_id, table.c.used.is_(False))
                .values(used=True)
            ).rowcount
        return bytes(row[0]) if spent == 1 else None
