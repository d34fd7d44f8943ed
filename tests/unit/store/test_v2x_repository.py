"""The V2X authorities' tables come from Alembic revision 0005 on SQLite and PostgreSQL, also in
databases where an earlier release made them with ``create_all``; their repositories speak
records with bools and enums."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, insert, inspect, select

from fleetid.errors import NotFoundError, StoreError
from fleetid.store.engine import memory_engine
from fleetid.store.metadata import metadata
from fleetid.store.migrate import (
    current_revision,
    downgrade,
    ensure_schema,
    head_revision,
    upgrade,
)
from fleetid.store.v2x_repository import (
    AuthorizationRecords,
    CaCertificateRecord,
    EnrolmentRecords,
    Publication,
    PublicationKind,
    RootCaRecords,
    V2xCaRole,
)
from fleetid.store.v2x_tables import (
    AA_TABLES,
    CA_TABLES,
    EA_TABLES,
    ea_canonical_keys,
    ea_enrolment_credentials,
)

V2X_TABLES = {t.name for t in (*EA_TABLES, *AA_TABLES, *CA_TABLES)}


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


# --- revision 0005 -------------------------------------------------------------------------------


def test_revision_0005_creates_the_v2x_tables(engine: Engine) -> None:
    upgrade(engine, "0004")
    assert not V2X_TABLES & _tables(engine)
    upgrade(engine, "0005")
    assert current_revision(engine) == "0005"
    assert _tables(engine) >= V2X_TABLES
    indexes = {ix["name"] for ix in inspect(engine).get_indexes("v2x_ea_enrolment_credentials")}
    assert "ix_v2x_ea_enrolment_credentials_its_id" in indexes


def test_revision_0005_downgrades_to_no_v2x_table(engine: Engine) -> None:
    ensure_schema(engine)
    downgrade(engine, "0004")
    assert current_revision(engine) == "0004"
    assert not V2X_TABLES & _tables(engine)


def _v2x_tables_by_create_all(engine: Engine) -> None:
    """What an EA of an earlier release left behind: its tables, made outside the migrations,
    with a registered vehicle in them."""
    metadata.create_all(engine, tables=[*EA_TABLES, *AA_TABLES, *CA_TABLES])
    with engine.begin() as connection:
        connection.execute(
            insert(ea_canonical_keys),
            {"its_id": b"VIN-1", "curve": "nistP256", "public_key": b"\x02" * 33, "active": True},
        )


@pytest.mark.parametrize("start", [None, "0004"])
def test_tables_made_by_create_all_are_adopted_with_their_rows(
    engine: Engine, start: str | None
) -> None:
    # An authority's own database (never migrated: start None) or one the fleet CA shares,
    # migrated up to 0004 already when the V2X tables were added beside its tables.
    if start is not None:
        upgrade(engine, start)
    _v2x_tables_by_create_all(engine)
    records = EnrolmentRecords(engine)  # migrates to head
    assert current_revision(engine) == head_revision()
    key = records.canonical_key(b"VIN-1")
    assert key is not None and key.active is True and key.curve == "nistP256"
    with engine.connect() as connection:
        assert len(connection.execute(select(ea_canonical_keys)).all()) == 1


def test_the_v2x_tables_are_on_the_one_metadata() -> None:
    assert set(metadata.tables) >= V2X_TABLES
    assert all(table.metadata is metadata for table in (*EA_TABLES, *AA_TABLES, *CA_TABLES))


# --- the EA's records ----------------------------------------------------------------------------


def test_ea_records_are_typed(engine: Engine) -> None:
    records = EnrolmentRecords(engine)
    assert records.canonical_key(b"VIN-1") is None
    records.add_canonical_key(b"VIN-1", curve="nistP256", public_key=b"\x03" * 33)
    records.add_credential(ec_id=b"E" * 8, its_id=b"VIN-1", certificate=b"ec1", not_after=10)
    records.add_credential(ec_id=b"F" * 8, its_id=b"VIN-1", certificate=b"ec2", not_after=20)
    first, second = records.credential(b"E" * 8), records.credential(b"F" * 8)
    assert first is not None and second is not None
    assert (first.superseded, first.revoked) == (True, False)  # the later EC supersedes it
    assert (second.superseded, second.revoked) == (False, False)
    assert type(first.superseded) is bool and type(second.not_after) is int
    assert records.revoke_vehicle(b"VIN-1") == 2
    key = records.canonical_key(b"VIN-1")
    assert key is not None and key.active is False
    assert records.credential_counts() == (2, 2)


def test_a_second_canonical_key_for_one_vehicle_is_refused(engine: Engine) -> None:
    records = EnrolmentRecords(engine)
    records.add_canonical_key(b"VIN-1", curve="nistP256", public_key=b"\x03" * 33)
    with pytest.raises(StoreError, match=b"VIN-1".hex()):
        records.add_canonical_key(b"VIN-1", curve="nistP256", public_key=b"\x02" * 33)
    key = records.canonical_key(b"VIN-1")
    assert key is not None and key.public_key == b"\x03" * 33


def test_revoking_an_unknown_ec_is_not_found(engine: Engine) -> None:
    records = EnrolmentRecords(engine)
    with pytest.raises(NotFoundError, match="no EC"):
        records.revoke_credential(b"X" * 8)
    assert records.credential(b"X" * 8) is None


def test_a_request_hash_is_remembered_until_it_expires(engine: Engine) -> None:
    seen = EnrolmentRecords(engine).seen_requests
    assert seen.remember(b"h" * 32, now=100, expires=400) is True
    assert seen.remember(b"h" * 32, now=200, expires=500) is False  # a replay
    assert seen.remember(b"h" * 32, now=400, expires=700) is False  # expires at 400: not yet gone
    assert seen.remember(b"h" * 32, now=401, expires=701) is True  # pruned, then new again


def test_counters_count_per_authority(engine: Engine) -> None:
    ea, aa = EnrolmentRecords(engine), AuthorizationRecords(engine)
    ea.counters.add("enrolment.ok")
    ea.counters.add("enrolment.ok")
    aa.counters.add("authorization.ok")
    assert ea.counters.all() == {"enrolment.ok": 2}
    assert aa.counters.all() == {"authorization.ok": 1}


def test_aa_records_keep_tickets_by_hash(engine: Engine) -> None:
    records = AuthorizationRecords(engine)
    records.add_ticket(at_id=b"A" * 8, certificate=b"at")
    assert records.ticket_count() == 1
    assert EnrolmentRecords(engine).credential_counts() == (0, 0)
    with engine.connect() as connection:
        assert connection.execute(select(ea_enrolment_credentials)).all() == []


# --- the Root CA's records -----------------------------------------------------------------------


def _ca(cert_id: bytes, role: V2xCaRole) -> CaCertificateRecord:
    return CaCertificateRecord(
        cert_id=cert_id,
        role=role,
        name=f"fleetid-{role}",
        certificate=b"cert-" + cert_id,
        access_point=None if role is V2xCaRole.ROOT else f"http://{role}.invalid/",
        revoked=False,
    )


def test_root_ca_records_round_trip_roles_and_publications(engine: Engine) -> None:
    records = RootCaRecords(engine)
    records.add_certificates([_ca(b"R" * 8, V2xCaRole.ROOT), _ca(b"E" * 8, V2xCaRole.EA)])
    assert {(r.role, r.revoked) for r in records.certificates()} == {
        (V2xCaRole.ROOT, False),
        (V2xCaRole.EA, False),
    }
    assert records.latest(PublicationKind.CTL) is None
    records.add_publications(
        Publication(kind=kind, sequence=sequence, encoded=f"{kind}{sequence}".encode())
        for sequence in (0, 2, 1)
        for kind in PublicationKind
    )
    latest = records.latest(PublicationKind.CRL)
    assert latest == Publication(kind=PublicationKind.CRL, sequence=2, encoded=b"crl2")


def test_revoking_cas_is_all_or_nothing(engine: Engine) -> None:
    records = RootCaRecords(engine)
    records.add_certificates([_ca(b"E" * 8, V2xCaRole.EA), _ca(b"A" * 8, V2xCaRole.AA)])
    with pytest.raises(NotFoundError, match=(b"Z" * 8).hex()):
        records.revoke([b"E" * 8, b"Z" * 8])
    assert not any(r.revoked for r in records.certificates())  # the EA's revocation rolled back
    assert records.revoke([b"A" * 8]) == [b"A" * 8]
    assert records.revoke([]) == [b"A" * 8]


def test_the_aas_tables_keep_no_insertion_order_on_sqlite() -> None:
    # Without rowid, SQLite orders the rows by their key (a hash), not by when they were issued
    # (docs/privacy.md): the revision must say so, as create_all did.
    engine = memory_engine()
    ensure_schema(engine)
    with engine.connect() as connection:
        ddl = dict(connection.exec_driver_sql("SELECT name, sql FROM sqlite_master").all())
    assert "WITHOUT ROWID" in ddl["v2x_aa_issued_tickets"]
    assert "WITHOUT ROWID" in ddl["v2x_aa_seen_requests"]
    assert "WITHOUT ROWID" not in ddl["v2x_ea_enrolment_credentials"]
