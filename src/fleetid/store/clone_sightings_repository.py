"""Reads and writes of the clone detector's tables (``fleetid.store.clone_sightings_table``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, func, insert, select
from sqlalchemy.exc import IntegrityError

from fleetid.errors import StoreError
from fleetid.store.clone_sightings_table import clone_quarantines, clone_sightings

__all__ = ["CloneSightings"]


class CloneSightings:
    """One device's contacts as the authority recorded them, and the quarantined devices."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def record(
        self,
        *,
        device_id: str,
        source: str,
        credential_serial: str,
        seen_at: datetime,
        counter: int | None,
        nonce: bytes | None,
    ) -> None:
        with self._engine.begin() as c:
            c.execute(
                insert(clone_sightings).values(
                    device_id=device_id,
                    source=source,
                    credential_serial=credential_serial,
                    seen_at=seen_at,
                    counter=counter,
                    nonce=nonce,
                )
            )

    def last_by_source(self, device_id: str) -> dict[str, datetime]:
        """The last contact of ``device_id`` from each source."""
        query = (
            select(clone_sightings.c.source, func.max(clone_sightings.c.seen_at))
            .where(clone_sightings.c.device_id == device_id)
            .group_by(clone_sightings.c.source)
        )
        with self._engine.connect() as c:
            return {str(source): seen for source, seen in c.execute(query)}

    def highest_counter(self, device_id: str) -> int | None:
        query = select(func.max(clone_sightings.c.counter)).where(
            clone_sightings.c.device_id == device_id
        )
        with self._engine.connect() as c:
            value = c.execute(query).scalar_one()
        return None if value is None else int(value)

    def nonce_seen(self, device_id: str, nonce: bytes) -> bool:
        query = (
            select(clone_sightings.c.id)
            .where(clone_sightings.c.device_id == device_id, clone_sightings.c.nonce == nonce)
            .limit(1)
        )
        with self._engine.connect() as c:
            return c.execute(query).first() is not None

    def quarantine(self, device_id: str, *, signal: str, detail: str, at: datetime) -> None:
        try:
            with self._engine.begin() as c:
                c.execute(
                    insert(clone_quarantines).values(
                        device_id=device_id, signal=signal, detail=detail, detected_at=at
                    )
                )
        except IntegrityError as exc:
            raise StoreError(f"device {device_id!r} is quarantined already") from exc

    def quarantined(self, device_id: str) -> bool:
        query = select(clone_quarantines.c.device_id).where(
            clone_quarantines.c.device_id == device_id
        )
        with self._engine.connect() as c:
            return c.execute(query).first() is not None
