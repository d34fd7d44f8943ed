"""FIDO authenticators' records (``fleetid.store.fido_tables``), typed: the metadata store's and
the operator registration's only SQL.

A BLOB replaces the models of the one before it in one transaction, and only if its serial is
above every serial loaded (the comparison and the insert share the transaction; a concurrent
load of the same serial fails on the primary key). A registration spends its challenge and
records the credential in one transaction, so a challenge is spent only by a recorded credential.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from datetime import datetime

from sqlalchemy import Connection, Engine, delete, func, insert, select, update

from fleetid.store.engine import immediate_transaction
from fleetid.store.fido_tables import (
    fido_authenticators,
    fido_challenges,
    fido_metadata_blobs,
    fido_operator_credentials,
)

__all__ = [
    "AuthenticatorModelRecord",
    "BlobRecord",
    "FidoChallengeRecord",
    "FidoRepository",
    "OperatorCredentialRecord",
]


@dataclass(frozen=True, kw_only=True)
class BlobRecord:
    serial: int
    next_update: datetime
    loaded_at: datetime
    sha256: bytes


@dataclass(frozen=True, kw_only=True)
class AuthenticatorModelRecord:
    model: str  # an AAGUID, or "ski:<hex>" for a U2F model
    description: str
    status: str
    status_effective: str | None
    roots_pem: str = field(repr=False)
    blob_serial: int


@dataclass(frozen=True, kw_only=True)
class FidoChallengeRecord:
    challenge: bytes
    operator: str
    expires_at: datetime
    used_at: datetime | None


@dataclass(frozen=True, kw_only=True)
class OperatorCredentialRecord:
    credential_id: bytes
    operator: str
    aaguid: str
    fmt: str
    public_key: bytes = field(repr=False)
    sign_count: int
    registered_at: datetime


class FidoRepository:
    """The FIDO tables over ``engine``; each method is one transaction."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def _writing(self) -> AbstractContextManager[Connection]:
        return immediate_transaction(self._engine, "FIDO records conflict")

    # --- the metadata store ---------------------------------------------------------------------

    def newest_blob(self) -> BlobRecord | None:
        with self._engine.connect() as c:
            row = c.execute(
                select(fido_metadata_blobs).order_by(fido_metadata_blobs.c.serial.desc()).limit(1)
            ).first()
        return None if row is None else BlobRecord(**row._mapping)

    def replace_models(
        self,
        blob: BlobRecord,
        models: Iterable[AuthenticatorModelRecord],
        check: Callable[[BlobRecord | None], None],
    ) -> None:
        """Record ``blob`` and make ``models`` the whole set, after ``check`` (which may raise)
        has seen the newest BLOB held, inside the same transaction."""
        with self._writing() as c:
            newest = c.execute(select(func.max(fido_metadata_blobs.c.serial))).scalar()
            held = None
            if newest is not None:
                row = c.execute(
                    select(fido_metadata_blobs).where(fido_metadata_blobs.c.serial == newest)
                ).one()
                held = BlobRecord(**row._mapping)
            check(held)
            c.execute(insert(fido_metadata_blobs).values(**asdict(blob)))
            c.execute(delete(fido_authenticators))
            rows = [asdict(m) for m in models]
            if rows:
                c.execute(insert(fido_authenticators), rows)

    def model(self, model: str) -> AuthenticatorModelRecord | None:
        with self._engine.connect() as c:
            row = c.execute(
                select(fido_authenticators).where(fido_authenticators.c.model == model)
            ).first()
        return None if row is None else AuthenticatorModelRecord(**row._mapping)

    def models_sharing_roots(self, roots_pem: str) -> int:
        """How many models list exactly these attestation roots."""
        with self._engine.connect() as c:
            count = c.execute(
                select(func.count()).where(fido_authenticators.c.roots_pem == roots_pem)
            ).scalar()
        return int(count or 0)

    # --- registration ---------------------------------------------------------------------------

    def issue_challenge(self, record: FidoChallengeRecord, now: datetime) -> None:
        """Record a challenge, pruning the expired ones."""
        with self._writing() as c:
            c.execute(delete(fido_challenges).where(fido_challenges.c.expires_at <= now))
            c.execute(insert(fido_challenges).values(**asdict(record)))

    def challenge(self, challenge: bytes) -> FidoChallengeRecord | None:
        with self._engine.connect() as c:
            row = c.execute(
                select(fido_challenges).where(fido_challenges.c.challenge == challenge)
            ).first()
        return None if row is None else FidoChallengeRecord(**row._mapping)

    def register(
        self,
        challenge: bytes,
        now: datetime,
        credential: Callable[[FidoChallengeRecord], OperatorCredentialRecord],
    ) -> OperatorCredentialRecord | None:
        """Spend ``challenge`` if it is unused and unexpired, then record what ``credential``
        makes of it (it may raise, which undoes the spend); ``None`` if the challenge was not
        spendable (``challenge`` then tells why)."""
        with self._writing() as c:
            spent = c.execute(
                update(fido_challenges)
                .where(
                    fido_challenges.c.challenge == challenge,
                    fido_challenges.c.used_at.is_(None),
                    fido_challenges.c.expires_at > now,
                )
                .values(used_at=now)
                .returning(*fido_challenges.c)
            ).first()
            if spent is None:
                return None
            record = credential(FidoChallengeRecord(**spent._mapping))
            c.execute(insert(fido_operator_credentials).values(**asdict(record)))
            return record

    def credentials_of(self, operator: str) -> list[OperatorCredentialRecord]:
        with self._engine.connect() as c:
            rows = c.execute(
                select(fido_operator_credentials)
                .where(fido_operator_credentials.c.operator == operator)
                .order_by(fido_operator_credentials.c.registered_at)
            ).all()
        return [OperatorCredentialRecord(**r._mapping) for r in rows]
