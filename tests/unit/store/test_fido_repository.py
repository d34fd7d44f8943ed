"""The FIDO tables: revision 0010 up and down, single-use challenges, one BLOB at a time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, inspect

from fleetid.errors import MetadataRollbackError, StoreError
from fleetid.store.fido_repository import (
    AuthenticatorModelRecord,
    BlobRecord,
    FidoChallengeRecord,
    FidoRepository,
    OperatorCredentialRecord,
)
from fleetid.store.migrate import current_revision, downgrade, upgrade

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
FIDO_TABLES = {
    "fido_metadata_blobs",
    "fido_authenticators",
    "fido_challenges",
    "fido_operator_credentials",
}


def _credential(
    spent: FidoChallengeRecord, credential_id: bytes = b"c1"
) -> OperatorCredentialRecord:
    return OperatorCredentialRecord(
        credential_id=credential_id,
        operator=spent.operator,
        aaguid="00000000-0000-0000-0000-000000000001",
        fmt="packed",
        public_key=b"\xa5",
        sign_count=0,
        registered_at=NOW,
    )


def _challenge(
    value: bytes = b"n" * 32, expires: timedelta = timedelta(minutes=5)
) -> FidoChallengeRecord:
    return FidoChallengeRecord(
        challenge=value, operator="alice", expires_at=NOW + expires, used_at=None
    )


def test_revision_0007_creates_and_drops_the_tables(engine: Engine) -> None:
    upgrade(engine, "0007")
    assert current_revision(engine) == "0007"
    assert set(inspect(engine).get_table_names()) >= FIDO_TABLES
    downgrade(engine, "0006")
    assert not FIDO_TABLES & set(inspect(engine).get_table_names())
    upgrade(engine)


def test_a_challenge_is_spent_once(engine: Engine) -> None:
    upgrade(engine)
    repository = FidoRepository(engine)
    repository.issue_challenge(_challenge(), NOW)
    recorded = repository.register(b"n" * 32, NOW, _credential)
    assert recorded is not None and repository.credentials_of("alice") == [recorded]
    assert repository.register(b"n" * 32, NOW, lambda s: _credential(s, b"c2")) is None
    record = repository.challenge(b"n" * 32)
    assert record is not None and record.used_at == NOW
    assert repository.register(b"x" * 32, NOW, _credential) is None  # never issued


def test_an_expired_challenge_is_not_spent(engine: Engine) -> None:
    upgrade(engine)
    repository = FidoRepository(engine)
    repository.issue_challenge(_challenge(expires=timedelta(seconds=1)), NOW)
    assert repository.register(b"n" * 32, NOW + timedelta(seconds=1), _credential) is None
    repository.issue_challenge(_challenge(b"m" * 32), NOW + timedelta(seconds=2))
    assert repository.challenge(b"n" * 32) is None  # pruned when the next was issued


def test_a_refusal_inside_the_transaction_leaves_the_challenge_unspent(engine: Engine) -> None:
    upgrade(engine)
    repository = FidoRepository(engine)
    repository.issue_challenge(_challenge(), NOW)

    def refuse(_spent: FidoChallengeRecord) -> OperatorCredentialRecord:
        raise MetadataRollbackError("refused")

    with pytest.raises(MetadataRollbackError):
        repository.register(b"n" * 32, NOW, refuse)
    record = repository.challenge(b"n" * 32)
    assert record is not None and record.used_at is None


def test_a_credential_registered_twice_is_a_store_conflict(engine: Engine) -> None:
    upgrade(engine)
    repository = FidoRepository(engine)
    repository.issue_challenge(_challenge(), NOW)
    repository.issue_challenge(_challenge(b"m" * 32), NOW)
    repository.register(b"n" * 32, NOW, _credential)
    with pytest.raises(StoreError, match="FIDO records conflict"):
        repository.register(b"m" * 32, NOW, _credential)
    record = repository.challenge(b"m" * 32)
    assert record is not None and record.used_at is None


def test_a_refused_blob_changes_nothing(engine: Engine) -> None:
    upgrade(engine)
    repository = FidoRepository(engine)
    blob = BlobRecord(serial=2, next_update=NOW, loaded_at=NOW, sha256=b"\x00" * 32)
    model = AuthenticatorModelRecord(
        model="m",
        description="d",
        status="FIDO_CERTIFIED",
        status_effective=None,
        roots_pem="",
        blob_serial=2,
    )
    repository.replace_models(blob, [model], lambda held: None)

    def refuse(held: BlobRecord | None) -> None:
        assert held == blob
        raise MetadataRollbackError("older")

    newer = BlobRecord(serial=3, next_update=NOW, loaded_at=NOW, sha256=b"\x01" * 32)
    with pytest.raises(MetadataRollbackError):
        repository.replace_models(newer, [], refuse)
    assert repository.newest_blob() == blob
    assert repository.model("m") == model
