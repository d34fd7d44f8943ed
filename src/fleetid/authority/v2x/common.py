"""What the EA and the AA share: their keys, refusals, replay and freshness, counters."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import Engine, Table, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from fleetid.clock import Clock
from fleetid.crypto.ecies import EcdhKey
from fleetid.crypto.signer import Signer
from fleetid.errors import FleetIdError
from fleetid.formats.ieee1609 import Certificate, time32, time64

__all__ = ["AuthorityKeys", "Counters", "Refused", "ReplayGuard"]


@dataclass(frozen=True, kw_only=True)
class AuthorityKeys:
    """A CA's signing key, its ECIES decryption key (both by reference) and its certificate."""

    signer: Signer = field(repr=False)
    decryption_key: EcdhKey = field(repr=False)
    certificate: Certificate


class Refused(FleetIdError):
    """A request the authority answers with a response code other than ``ok``."""

    def __init__(self, code: str, reason: str) -> None:
        self.code = code
        super().__init__(f"{code}: {reason}")


class ReplayGuard:
    """Freshness of generationTime and single use of each request (by its requestHash).

    A request is accepted once, and only while its generationTime is within ``window`` of now;
    seen hashes are kept until they could no longer pass the freshness check, then dropped.
    """

    def __init__(self, engine: Engine, table: Table, clock: Clock, window: timedelta) -> None:
        self._engine = engine
        self._table = table
        self._clock = clock
        self._window = window

    def check_fresh(self, generation_time: int, code: str) -> None:
        now = time64(self._clock.now())
        window = int(self._window.total_seconds() * 1_000_000)
        if abs(now - generation_time) > window:
            raise Refused(code, "generationTime outside the freshness window")

    def remember(self, request_hash: bytes, code: str) -> None:
        now = time32(self._clock.now())
        expires = now + int(self._window.total_seconds()) + 1
        with self._engine.begin() as conn:
            conn.execute(delete(self._table).where(self._table.c.expires < now))
            try:
                conn.execute(insert(self._table).values(request_hash=request_hash, expires=expires))
            except IntegrityError:
                raise Refused(code, "replayed request") from None


class Counters:
    """Aggregate counters (no identifiers, no times): what ``fleetid v2x stats`` shows."""

    def __init__(self, engine: Engine, table: Table) -> None:
        self._engine = engine
        self._table = table

    def add(self, name: str) -> None:
        with self._engine.begin() as conn:
            done = conn.execute(
                update(self._table)
                .where(self._table.c.name == name)
                .values(value=self._table.c.value + 1)
            )
            if done.rowcount == 0:
                conn.execute(insert(self._table).values(name=name, value=1))

    def all(self) -> dict[str, int]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(self._table.c.name, self._table.c.value)).all()
        return {str(name): int(value) for name, value in rows}
