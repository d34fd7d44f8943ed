"""The package and discovery tables come from revisions 0008 and 0012 on SQLite and PostgreSQL;
their state changes are conditional, a notification is recorded once, and wrong confirmation
codes are counted one by one, however many arrive at once."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect

from fleetid.store.engine import open_engine
from fleetid.store.migrate import downgrade, upgrade
from fleetid.store.package_repository import (
    EventRegistration,
    PackageRecord,
    PackageRepository,
    TransactionRecord,
)

NOW = datetime(2031, 5, 1, 12, tzinfo=UTC)


def _package(event_id: str = "e" * 32) -> PackageRecord:
    return PackageRecord(
        event_id=event_id,
        reference="ref",
        kind="configuration",
        content=b"{}",
        binding_sha256=bytes(32),
        cc_hash=None,
        state="released",
        reason=None,
        created_at=NOW,
        expires_at=NOW + timedelta(days=1),
        updated_at=NOW,
    )


@pytest.fixture
def repository(db_url: str) -> Iterator[PackageRepository]:
    engine = open_engine(db_url)
    made = PackageRepository(engine)
    made.create_tables()
    yield made
    engine.dispose()


def test_revision_0011_creates_and_drops_the_tables(db_url: str) -> None:
    engine = open_engine(db_url)
    try:
        upgrade(engine)
        names = {"packages", "package_transactions", "package_notifications"}
        names |= {"discovery_events", "discovery_sessions"}
        assert names <= set(inspect(engine).get_table_names())
        downgrade(engine, "0006")
        assert not names & set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_a_transition_happens_once(repository: PackageRepository) -> None:
    repository.add_packages([_package()])
    assert repository.transition("e" * 32, ["released"], "downloaded", NOW, bound=b"b")
    assert not repository.transition("e" * 32, ["released"], "downloaded", NOW, bound=b"x")
    record = repository.package("e" * 32)
    assert record is not None and (record.state, record.bound) == ("downloaded", b"b")
    assert record.expires_at == NOW + timedelta(days=1)  # timezone-aware on both databases
    assert repository.counts() == {"downloaded": 1}


def test_a_download_and_a_notification_settle_once(repository: PackageRepository) -> None:
    repository.add_packages([_package()])
    repository.add_transaction(
        TransactionRecord(
            transaction_id="t" * 32,
            server_challenge=bytes(16),
            euicc_challenge=bytes(16),
            expires_at=NOW,
        )
    )
    settle = {"state": "installed", "reason": None, "now": NOW}
    # Not downloaded yet: refused, and nothing recorded (the same notification settles later).
    assert repository.settle("t" * 32, 1, "e" * 32, **settle) == "refused"  # type: ignore[arg-type]
    assert repository.mark_downloaded("e" * 32, "t" * 32, b"k" * 32, b"bound", NOW)
    assert not repository.mark_downloaded("e" * 32, "u" * 32, b"x" * 32, b"other", NOW)
    transaction = repository.transaction("t" * 32)
    assert transaction is not None and transaction.otpk_sha256 == b"k" * 32
    # Another transaction cannot settle this package.
    assert repository.settle("u" * 32, 1, "e" * 32, **settle) == "refused"  # type: ignore[arg-type]
    assert repository.settle("t" * 32, 1, "e" * 32, **settle) == "settled"  # type: ignore[arg-type]
    assert repository.settle("t" * 32, 1, "e" * 32, **settle) == "replayed"  # type: ignore[arg-type]
    assert repository.settle("t" * 32, 2, "e" * 32, **settle) == "refused"  # type: ignore[arg-type]
    record = repository.package("e" * 32)
    assert record is not None and (record.state, record.bound) == ("installed", b"bound")


def test_discovery_events_by_device_and_sessions_spent_once(repository: PackageRepository) -> None:
    repository.register_events(
        [
            EventRegistration(device_ref="dev-a", event_id="e1", service_address="http://a/p"),
            EventRegistration(device_ref="dev-b", event_id="e2", service_address="http://b/p"),
        ],
        NOW,
    )
    assert [e.event_id for e in repository.events_for("dev-a")] == ["e1"]
    assert repository.delete_event("e1") and not repository.delete_event("e1")
    assert repository.events_for("dev-a") == []
    repository.add_discovery_session("s1", b"c" * 16, NOW + timedelta(minutes=5))
    repository.add_discovery_session("s2", b"d" * 16, NOW - timedelta(seconds=1))
    assert repository.spend_discovery_session("s1", NOW) == b"c" * 16
    assert repository.spend_discovery_session("s1", NOW) is None  # used
    assert repository.spend_discovery_session("s2", NOW) is None  # expired
    assert repository.spend_discovery_session("nope", NOW) is None


def test_revision_0012_adds_the_code_attempts_and_takes_them_away(db_url: str) -> None:
    engine = open_engine(db_url)
    try:
        upgrade(engine)
        assert "cc_attempts" in {c["name"] for c in inspect(engine).get_columns("packages")}
        downgrade(engine, "0011")
        assert "cc_attempts" not in {c["name"] for c in inspect(engine).get_columns("packages")}
    finally:
        engine.dispose()


def test_wrong_codes_lock_the_package_at_the_limit(repository: PackageRepository) -> None:
    repository.add_packages([_package()])
    assert repository.count_wrong_code("e" * 32, 3, "locked", NOW) == 1
    assert repository.count_wrong_code("e" * 32, 3, "locked", NOW) == 2
    record = repository.package("e" * 32)
    assert record is not None and (record.state, record.cc_attempts) == ("released", 2)
    assert repository.count_wrong_code("e" * 32, 3, "locked", NOW) == 3
    record = repository.package("e" * 32)
    assert record is not None and (record.state, record.reason) == ("failed", "locked")
    # Locked: nothing more is counted, and the package cannot be downloaded.
    assert repository.count_wrong_code("e" * 32, 3, "locked", NOW) is None
    assert not repository.mark_downloaded("e" * 32, "t" * 32, b"k" * 32, b"bound", NOW)
    assert repository.count_wrong_code("f" * 32, 3, "locked", NOW) is None  # no such package


def test_concurrent_wrong_codes_are_counted_one_by_one(repository: PackageRepository) -> None:
    repository.add_packages([_package()])
    limit, attempts = 4, 12
    with ThreadPoolExecutor(max_workers=6) as pool:
        counted = list(
            pool.map(
                lambda _: repository.count_wrong_code("e" * 32, limit, "locked", NOW),
                range(attempts),
            )
        )
    # Each counted attempt saw its own number; exactly one reached the limit; the rest were
    # refused without being counted because the package had failed.
    assert sorted(c for c in counted if c is not None) == [1, 2, 3, 4]
    assert counted.count(None) == attempts - limit
    record = repository.package("e" * 32)
    assert record is not None
    assert (record.state, record.reason, record.cc_attempts) == ("failed", "locked", limit)


def test_a_batch_of_packages_is_one_insert_and_released_ones_are_found_by_reference(
    repository: PackageRepository,
) -> None:
    batch = [
        dataclasses.replace(
            _package(f"{i:032x}"), reference=f"ref-{i}", binding_sha256=bytes([i]) * 32
        )
        for i in range(3)
    ]
    repository.add_packages(batch)
    repository.add_packages([])  # nothing to write is no transaction at all
    assert repository.transition(f"{1:032x}", ["released"], "downloaded", NOW)
    found = repository.released_for(["ref-0", "ref-1", "ref-2", "ref-9"])
    assert set(found) == {("ref-0", bytes(32)), ("ref-2", bytes([2]) * 32)}
    assert found[("ref-2", bytes([2]) * 32)].event_id == f"{2:032x}"
