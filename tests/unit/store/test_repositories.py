"""The authority's store on SQLite and PostgreSQL: migrations, constraints, single use, revoke."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, insert, inspect, select, text, update
from sqlalchemy.exc import IntegrityError, StatementError

from fleetid.errors import NotFoundError, PolicyError, StoreError
from fleetid.store import auditlog_table, manifest_table
from fleetid.store.migrate import current_revision, ensure_schema, head_revision, upgrade
from fleetid.store.repositories import (
    ChallengeRecord,
    NewCaKey,
    NewCertificate,
    Store,
    TokenRecord,
    normalise_serial,
    revocation_reason,
)
from fleetid.store.schema import (
    CaRole,
    CertificateStatus,
    DeviceStatus,
    RevocationReason,
    ca_keys,
    certificates,
    metadata,
    revocation_events,
)

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(engine: Engine) -> Store:
    return Store(engine)


def _issuer(store: Store, label: str = "fleet-issuing-1") -> int:
    with store.transaction() as tx:
        return tx.ca_keys.add(
            NewCaKey(
                role=CaRole.ISSUING,
                generation=1,
                hsm_label=label,
                subject="CN=test issuing",
                subject_key_id=bytes(20),
                not_before=NOW,
                not_after=NOW + timedelta(days=365),
                active=True,
                certificate=b"\x30\x00",
                created_at=NOW,
            )
        ).id


def _certificate(issuer_id: int, serial: int, device_id: str | None = None) -> NewCertificate:
    return NewCertificate(
        serial=f"{serial:040x}",
        issuer_id=issuer_id,
        device_id=device_id,
        profile="token-device",
        subject="CN=dev",
        public_key_sha256=hashlib.sha256(serial.to_bytes(20, "big")).digest(),
        not_before=NOW,
        not_after=NOW + timedelta(days=7),
        issued_at=NOW,
        der=b"\x30\x00",
    )


# --- migrations ---------------------------------------------------------------------------------


def test_migration_creates_every_table_at_head(engine: Engine) -> None:
    ensure_schema(engine)
    assert current_revision(engine) == head_revision()
    tables = set(inspect(engine).get_table_names())
    assert set(metadata.tables) <= tables
    assert {"certificates", "line_manifest", "audit_log_entries", "alembic_version"} <= tables
    indexes = {ix["name"] for ix in inspect(engine).get_indexes("certificates")}
    assert {
        "ix_certificates_device_id",
        "ix_certificates_status",
        "ix_certificates_not_after",
    } <= indexes


def test_migration_0004_turns_each_existing_revocation_into_an_event(engine: Engine) -> None:
    upgrade(engine, "0003")
    store = Store(engine, migrate=False)
    issuer = _issuer(store)
    with engine.begin() as c:
        for serial in (1, 2):
            values = {**_certificate(issuer, serial).__dict__, "status": "valid"}
            c.execute(insert(certificates).values(**values))
        c.execute(
            update(certificates)
            .where(certificates.c.serial == f"{2:040x}")
            .values(
                status="revoked",
                revoked_at=NOW,
                revocation_reason="keyCompromise",
                revocation_seq=7,
            )
        )
    ensure_schema(engine)
    with engine.connect() as c:
        events = c.execute(select(revocation_events)).all()
    assert [(e.sequence, e.reason, e.revoked_at) for e in events] == [(7, "keyCompromise", NOW)]


def test_migration_is_idempotent(engine: Engine) -> None:
    ensure_schema(engine)
    ensure_schema(engine)
    assert current_revision(engine) == head_revision()


def test_migration_adopts_factory_tables_created_before_it(engine: Engine) -> None:
    # The audit log and the line create their tables with create_all; the first migration
    # must then create the rest and keep their rows.
    metadata.create_all(
        engine,
        tables=[
            auditlog_table.audit_entries,
            auditlog_table.audit_checkpoints,
            manifest_table.line_manifest,
        ],
    )
    with engine.begin() as connection:
        connection.execute(
            insert(auditlog_table.audit_checkpoints).values(
                tree_size=1, root_hash=bytes(32), note="n"
            )
        )
    ensure_schema(engine)
    with engine.connect() as connection:
        assert connection.execute(select(auditlog_table.audit_checkpoints)).one().tree_size == 1
    assert "certificates" in inspect(engine).get_table_names()


def test_an_unmigrated_database_has_no_revision(engine: Engine) -> None:
    assert current_revision(engine) is None


# --- certificates: serial uniqueness by constraint --------------------------------------------


def test_duplicate_serial_is_refused_by_the_database(store: Store) -> None:
    issuer = _issuer(store)
    with store.transaction() as tx:
        tx.certificates.add(_certificate(issuer, 0x1234))
    with pytest.raises(StoreError, match="not recorded"), store.transaction() as tx:
        tx.certificates.add(_certificate(issuer, 0x1234))
    # Below the repository: the UNIQUE constraint itself refuses the row.
    row = {**_certificate(issuer, 0x1234).__dict__, "status": "valid"}
    with pytest.raises(IntegrityError), store.engine.begin() as connection:
        connection.execute(insert(certificates).values(row))
    with store.transaction() as tx:
        assert tx.certificates.count() == 1


def test_serial_of_wrong_length_is_refused_by_the_database(store: Store) -> None:
    issuer = _issuer(store)
    row = {**_certificate(issuer, 1).__dict__, "serial": "ab" * 19, "status": "valid"}
    with pytest.raises(IntegrityError), store.engine.begin() as connection:
        connection.execute(insert(certificates).values(row))


def test_revoked_row_without_reason_is_refused_by_the_database(store: Store) -> None:
    issuer = _issuer(store)
    with store.transaction() as tx:
        tx.certificates.add(_certificate(issuer, 7))
    with pytest.raises(IntegrityError), store.engine.begin() as connection:
        connection.execute(update(certificates).values(status="revoked", revoked_at=NOW))


def test_unknown_status_is_refused_by_the_database(store: Store) -> None:
    issuer = _issuer(store)
    row = {**_certificate(issuer, 8).__dict__, "status": "maybe"}
    with pytest.raises(IntegrityError), store.engine.begin() as connection:
        connection.execute(insert(certificates).values(row))


def test_certificate_round_trip_keeps_utc(store: Store) -> None:
    issuer = _issuer(store)
    with store.transaction() as tx:
        record = tx.certificates.add(_certificate(issuer, 0xABCDEF, None))
    with store.transaction() as tx:
        again = tx.certificates.by_serial("AB:CD:EF")
    assert again == record
    assert again.not_after == NOW + timedelta(days=7)
    assert again.not_after.tzinfo is not None
    assert again.status == CertificateStatus.VALID


def test_naive_datetime_is_refused(store: Store) -> None:
    issuer = _issuer(store)
    naive = _certificate(issuer, 9).__dict__ | {"not_after": datetime(2027, 1, 1)}
    with pytest.raises(StatementError, match="naive"), store.transaction() as tx:
        tx.certificates.add(NewCertificate(**naive))


# --- revocation ---------------------------------------------------------------------------------


def test_revoke_records_reason_time_and_increasing_sequence(store: Store) -> None:
    issuer = _issuer(store)
    with store.transaction() as tx:
        for serial in (1, 2, 3):
            tx.certificates.add(_certificate(issuer, serial))
    with store.transaction() as tx:
        first = tx.certificates.revoke(f"{2:x}", "keyCompromise", NOW)
        second = tx.certificates.revoke("0x3", "cessationOfOperation", NOW + timedelta(seconds=1))
    assert (first.sequence, second.sequence) == (1, 2)
    with store.transaction() as tx:
        row = tx.certificates.by_serial("2")
        assert row.status == CertificateStatus.REVOKED
        assert row.revocation_reason == "keyCompromise"
        assert row.revoked_at == NOW
        assert [r.serial for r in tx.certificates.revoked_since(0)] == [f"{n:040x}" for n in (2, 3)]
        assert [r.sequence for r in tx.certificates.revoked_since(1)] == [2]
        assert tx.certificates.by_serial("1").status == CertificateStatus.VALID


def test_revoke_unknown_serial_raises_and_spends_no_sequence(store: Store) -> None:
    issuer = _issuer(store)
    with store.transaction() as tx:
        tx.certificates.add(_certificate(issuer, 5))
    with pytest.raises(NotFoundError, match="no certificate"), store.transaction() as tx:
        tx.certificates.revoke("ff" * 20, "keyCompromise", NOW)
    with store.transaction() as tx:
        assert tx.certificates.revoke("5", "superseded", NOW).sequence == 1


def test_revoke_twice_is_refused(store: Store) -> None:
    issuer = _issuer(store)
    with store.transaction() as tx:
        tx.certificates.add(_certificate(issuer, 6))
        tx.certificates.revoke("6", "keyCompromise", NOW)
    with pytest.raises(PolicyError, match="already revoked"), store.transaction() as tx:
        tx.certificates.revoke("6", "unspecified", NOW)


def test_revoke_with_an_unknown_reason_is_refused(store: Store) -> None:
    issuer = _issuer(store)
    with store.transaction() as tx:
        tx.certificates.add(_certificate(issuer, 10))
    with pytest.raises(PolicyError, match="RFC 5280"), store.transaction() as tx:
        tx.certificates.revoke("a", "lostIt", NOW)
    with store.transaction() as tx:
        assert tx.certificates.by_serial("a").status == CertificateStatus.VALID


def test_supersede_links_the_successor(store: Store) -> None:
    issuer = _issuer(store)
    with store.transaction() as tx:
        old = tx.certificates.add(_certificate(issuer, 11))
        new = tx.certificates.add(_certificate(issuer, 12))
        tx.certificates.revoke(old.serial, "superseded", NOW, superseded_by=new.id)
        assert tx.certificates.by_id(old.id).superseded_by == new.id


@pytest.mark.parametrize(
    ("text_serial", "expected"),
    [("0x1F", "1f".rjust(40, "0")), ("1f:00", "1f00".rjust(40, "0")), ("7F" * 20, "7f" * 20)],
)
def test_serial_normalisation(text_serial: str, expected: str) -> None:
    assert normalise_serial(text_serial) == expected


@pytest.mark.parametrize("bad", ["", "zz", "0", "01" * 21])
def test_serial_normalisation_refuses(bad: str) -> None:
    with pytest.raises(NotFoundError):
        normalise_serial(bad)


# --- devices, tokens, challenges, CA keys -------------------------------------------------------


def test_device_lifecycle_and_unknown_device(store: Store) -> None:
    with store.transaction() as tx:
        tx.devices.add("gw-1", DeviceStatus.PENDING, NOW, provisioner="token")
        tx.devices.set_status("gw-1", DeviceStatus.ENROLLED, NOW)
        assert tx.devices.require("gw-1").status == DeviceStatus.ENROLLED
    with pytest.raises(StoreError, match="exists"), store.transaction() as tx:
        tx.devices.add("gw-1", DeviceStatus.PENDING, NOW, provisioner=None)
    with pytest.raises(NotFoundError), store.transaction() as tx:
        tx.devices.set_status("nobody", DeviceStatus.REVOKED, NOW)


def _token(expires: datetime) -> TokenRecord:
    return TokenRecord(
        username="t-1",
        device_id="gw-1",
        secret_sha256=bytes(32),
        created_at=NOW,
        expires_at=expires,
    )


def test_token_is_consumed_once(store: Store) -> None:
    with store.transaction() as tx:
        tx.devices.add("gw-1", DeviceStatus.PENDING, NOW, provisioner="token")
        tx.tokens.add(_token(NOW + timedelta(hours=1)))
    with store.transaction() as tx:
        assert tx.tokens.consume("t-1", NOW) is True
    with store.transaction() as tx:
        assert tx.tokens.consume("t-1", NOW) is False
        assert tx.tokens.get("t-1").used_at == NOW  # type: ignore[union-attr]


def test_expired_token_is_not_consumed(store: Store) -> None:
    with store.transaction() as tx:
        tx.devices.add("gw-1", DeviceStatus.PENDING, NOW, provisioner="token")
        tx.tokens.add(_token(NOW))
        assert tx.tokens.consume("t-1", NOW) is False
        assert tx.tokens.get("t-1").used_at is None  # type: ignore[union-attr]


def test_challenge_is_single_use_and_expires(store: Store) -> None:
    fresh, stale = b"\x01" * 32, b"\x02" * 32
    with store.transaction() as tx:
        for nonce in (fresh, stale):
            tx.challenges.add(
                ChallengeRecord(
                    nonce=nonce,
                    device_id=None,
                    created_at=NOW,
                    expires_at=NOW + timedelta(minutes=5),
                )
            )
    later = NOW + timedelta(minutes=5)
    with store.transaction() as tx:
        assert tx.challenges.consume(fresh, NOW) is True
        assert tx.challenges.consume(fresh, NOW) is False
        assert tx.challenges.consume(stale, later) is False
        assert tx.challenges.consume(b"\x03" * 32, NOW) is False


def test_spend_returns_the_challenge_it_spent_once(store: Store) -> None:
    nonce = b"\x04" * 32
    with store.transaction() as tx:
        tx.challenges.add(
            ChallengeRecord(
                nonce=nonce,
                device_id="dev-9",
                created_at=NOW,
                expires_at=NOW + timedelta(minutes=5),
            )
        )
    spent_at = NOW + timedelta(minutes=1)
    with store.transaction() as tx:
        spent = tx.challenges.spend(nonce, spent_at)
        assert spent == tx.challenges.get(nonce)
        assert spent is not None and spent.device_id == "dev-9" and spent.used_at == spent_at
        assert tx.challenges.spend(nonce, spent_at) is None  # used
        assert tx.challenges.spend(b"\x05" * 32, NOW) is None  # unknown


def test_records_returned_by_add_are_what_a_read_gives(store: Store) -> None:
    issuer = _issuer(store)
    with store.transaction() as tx:
        device = tx.devices.add(
            "dev-1",
            DeviceStatus.PENDING,
            NOW,
            provisioner="attestation",
            idevid_serial="SN-1",
            idevid_key_sha256=bytes(range(32)),
        )
        certificate = tx.certificates.add(_certificate(issuer, 0x1234, "dev-1"))
    with store.transaction() as tx:
        assert tx.devices.require("dev-1") == device
        assert tx.certificates.by_id(certificate.id) == certificate


def test_ca_keys_active_and_missing(store: Store) -> None:
    with pytest.raises(NotFoundError, match="ca init"), store.transaction() as tx:
        tx.ca_keys.active(CaRole.ROOT)
    issuer = _issuer(store)
    with store.transaction() as tx:
        assert tx.ca_keys.active(CaRole.ISSUING).id == issuer
    with pytest.raises(StoreError, match="generation 1 exists"):
        _issuer(store, label="another-label")


def test_bulk_insert_then_indexed_lookup(store: Store) -> None:
    issuer = _issuer(store)
    rows = [{**_certificate(issuer, n, None).__dict__, "status": "valid"} for n in range(1, 501)]
    store.bulk_insert_certificates(rows)
    with store.transaction() as tx:
        assert tx.certificates.count() == 500
        assert tx.certificates.revoke(f"{250:x}", "keyCompromise", NOW).sequence == 1
        assert tx.certificates.count(status=CertificateStatus.REVOKED) == 1


def test_postgres_uses_its_own_schema(backend: str, engine: Engine) -> None:
    ensure_schema(engine)
    with engine.connect() as connection:
        if backend == "postgresql":
            schema = connection.execute(text("SELECT current_schema()")).scalar_one()
            assert schema.startswith("fleetid_t_")
        assert connection.execute(select(ca_keys)).all() == []


# --- typed records ------------------------------------------------------------------------------


def test_records_hold_enums_and_bools_not_column_text(store: Store) -> None:
    issuer = _issuer(store)
    with store.transaction() as tx:
        key = tx.ca_keys.by_id(issuer)
        tx.devices.add("dev-typed", DeviceStatus.ENROLLED, NOW, provisioner="token")
        tx.certificates.add(_certificate(issuer, 0x77, "dev-typed"))
        revocation = tx.certificates.revoke("77", RevocationReason.KEY_COMPROMISE, NOW)
    with store.transaction() as tx:
        device = tx.devices.require("dev-typed")
        (certificate,) = tx.certificates.for_device("dev-typed")
    assert type(key.role) is CaRole and key.role is CaRole.ISSUING
    assert key.active is True
    assert type(device.status) is DeviceStatus
    assert certificate.status is CertificateStatus.REVOKED
    assert certificate.revocation_reason is RevocationReason.KEY_COMPROMISE
    assert revocation.reason is RevocationReason.KEY_COMPROMISE


def test_a_reason_is_parsed_by_name() -> None:
    assert revocation_reason("cACompromise") is RevocationReason.CA_COMPROMISE
    with pytest.raises(PolicyError, match="removeFromCRL is not a revocation reason"):
        revocation_reason("removeFromCRL")
    with pytest.raises(PolicyError, match="'lostIt' is not an RFC 5280"):
        revocation_reason("lostIt")
    with pytest.raises(PolicyError, match="'KeyCompromise' is not"):
        revocation_reason("KeyCompromise")  # names are case-sensitive (RFC 5280 ASN.1 names)
