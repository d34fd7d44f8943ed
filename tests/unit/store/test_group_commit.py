"""Group commit on SQLite and PostgreSQL: one commit for many units, each rolled back alone."""

from __future__ import annotations

import fcntl
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, event

from fleetid.errors import NotFoundError, StoreError
from fleetid.store.group_commit import GroupCommit
from fleetid.store.repositories import ChallengeRecord, Store
from fleetid.store.schema import DeviceStatus

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(engine: Engine) -> Store:
    return Store(engine)


@pytest.fixture
def commits(engine: Engine) -> list[int]:
    seen: list[int] = []
    event.listen(engine, "commit", lambda _connection: seen.append(1))
    return seen


def _add_device(store: Store, device_id: str) -> str:
    with store.transaction() as tx:
        tx.devices.add(device_id, DeviceStatus.PENDING, NOW, provisioner="token")
    return device_id


def _add_then_fail(store: Store, device_id: str) -> None:
    with store.transaction() as tx:
        tx.devices.add(device_id, DeviceStatus.PENDING, NOW, provisioner="token")
        tx.devices.set_status("nobody", DeviceStatus.ENROLLED, NOW)  # raises NotFoundError


def _status(store: Store, device_id: str) -> str | None:
    with store.transaction() as tx:
        device = tx.devices.get(device_id)
    return None if device is None else device.status


@contextmanager
def _writer(store: Store, max_batch: int = 32) -> Iterator[GroupCommit]:
    group = GroupCommit(store, max_batch=max_batch)
    try:
        yield group
    finally:
        group.close()


def _held(group: GroupCommit) -> threading.Event:
    """Occupy the writer until the returned event is set, so that what is submitted meanwhile
    queues up and runs as one batch."""
    started, release = threading.Event(), threading.Event()

    def hold() -> None:
        started.set()
        release.wait(10)

    group.submit(hold)
    assert started.wait(10)
    return release


def test_queued_units_share_one_commit(store: Store, commits: list[int]) -> None:
    with _writer(store) as group:
        release = _held(group)
        futures = [group.submit(_add_device, store, f"dev-{i}") for i in range(10)]
        before = len(commits)
        release.set()
        assert [f.result(10) for f in futures] == [f"dev-{i}" for i in range(10)]
        assert len(commits) - before == 2  # the held unit's batch, then all ten in one
    assert all(_status(store, f"dev-{i}") == DeviceStatus.PENDING for i in range(10))


def test_a_failing_unit_rolls_back_alone(store: Store) -> None:
    with _writer(store) as group:
        release = _held(group)
        good = group.submit(_add_device, store, "good-1")
        bad = group.submit(_add_then_fail, store, "bad")
        after = group.submit(_add_device, store, "good-2")
        release.set()
        assert good.result(10) == "good-1" and after.result(10) == "good-2"
        with pytest.raises(NotFoundError):
            bad.result(10)
    assert _status(store, "good-1") == _status(store, "good-2") == DeviceStatus.PENDING
    assert _status(store, "bad") is None


def test_a_unit_sees_the_writes_of_the_units_before_it(store: Store) -> None:
    nonce = b"\x07" * 32

    def add() -> None:
        with store.transaction() as tx:
            tx.challenges.add(
                ChallengeRecord(
                    nonce=nonce, device_id=None, created_at=NOW, expires_at=NOW + timedelta(1)
                )
            )

    def spend() -> bool:
        with store.transaction() as tx:
            return tx.challenges.consume(nonce, NOW)

    with _writer(store) as group:
        release = _held(group)
        futures = [group.submit(add), group.submit(spend), group.submit(spend)]
        release.set()
        assert [f.result(10) for f in futures] == [None, True, False]


def test_a_failed_commit_fails_every_unit_of_the_batch(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_batch = store.batch

    @contextmanager
    def failing_batch() -> Iterator[None]:
        with real_batch():
            yield
            raise StoreError("disk full")  # rolls the batch back, as a failed COMMIT would

    with _writer(store) as group:
        release = _held(group)
        monkeypatch.setattr(store, "batch", failing_batch)
        futures = [group.submit(_add_device, store, f"dev-{i}") for i in range(3)]
        release.set()
        for future in futures:
            with pytest.raises(StoreError, match="not committed: disk full"):
                future.result(10)
    assert all(_status(store, f"dev-{i}") is None for i in range(3))


def test_batches_are_capped(store: Store, commits: list[int]) -> None:
    with _writer(store, max_batch=4) as group:
        release = _held(group)
        futures = [group.submit(_add_device, store, f"dev-{i}") for i in range(10)]
        before = len(commits)
        release.set()
        for future in futures:
            future.result(10)
        assert len(commits) - before == 1 + 3  # the held unit's batch, then 4 + 4 + 2


def test_close_finishes_the_queue_and_refuses_more(store: Store) -> None:
    group = GroupCommit(store)
    futures = [group.submit(_add_device, store, f"dev-{i}") for i in range(5)]
    group.close()
    assert all(f.done() and f.exception() is None for f in futures)
    with pytest.raises(StoreError, match="closed"):
        group.submit(_add_device, store, "late")


def test_a_batch_does_not_nest(store: Store) -> None:
    with store.batch(), pytest.raises(StoreError, match="already open"), store.batch():
        pass


def test_a_nested_unit_rolls_back_to_its_own_savepoint(store: Store) -> None:
    def unit() -> None:
        with store.transaction() as tx:
            tx.devices.add("outer", DeviceStatus.PENDING, NOW, provisioner=None)
            with pytest.raises(NotFoundError):
                _add_then_fail(store, "inner")
            tx.devices.set_status("outer", DeviceStatus.ENROLLED, NOW)

    with _writer(store) as group:
        group.submit(unit).result(10)
    assert _status(store, "outer") == DeviceStatus.ENROLLED
    assert _status(store, "inner") is None


def test_prepare_runs_before_the_transaction_and_hands_its_result_over(
    store: Store, engine: Engine
) -> None:
    lock_file = None
    if engine.dialect.name == "sqlite":
        lock_file = Path(str(engine.url.database) + ".writer")

    def prepare(device_id: str) -> str:
        if device_id == "refused":
            raise PermissionError("examined and refused")
        if lock_file is not None:  # no writer holds SQLite's queue while units prepare
            with lock_file.open("a+") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(handle, fcntl.LOCK_UN)
        return device_id.upper()

    with _writer(store) as group:
        release = _held(group)
        futures = [
            group.submit_prepared(lambda d=d: prepare(d), lambda name: _add_device(store, name))
            for d in ("dev-a", "refused", "dev-b")
        ]
        release.set()
        assert futures[0].result(10) == "DEV-A" and futures[2].result(10) == "DEV-B"
        with pytest.raises(PermissionError):
            futures[1].result(10)
    assert _status(store, "DEV-A") == _status(store, "DEV-B") == DeviceStatus.PENDING


def test_a_unit_refused_by_the_database_rolls_back_alone(store: Store) -> None:
    _add_device(store, "taken")
    with _writer(store) as group:
        release = _held(group)
        before = group.submit(_add_device, store, "dev-1")
        duplicate = group.submit(_add_device, store, "taken")  # a UNIQUE violation in the DB
        after = group.submit(_add_device, store, "dev-2")
        release.set()
        with pytest.raises(StoreError, match="exists"):
            duplicate.result(10)
        assert before.result(10) == "dev-1" and after.result(10) == "dev-2"
    assert _status(store, "dev-1") == _status(store, "dev-2") == DeviceStatus.PENDING


# --- what the writer tells its owner: batch sizes, and the submitter's context ---------------


def test_on_batch_hears_each_batch_size_and_its_outcome(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    heard: list[tuple[int, bool]] = []
    group = GroupCommit(store, max_batch=4, on_batch=lambda size, ok: heard.append((size, ok)))
    try:
        release = _held(group)
        futures = [group.submit(_add_device, store, f"dev-{i}") for i in range(6)]
        release.set()
        for future in futures:
            future.result(10)
        assert heard == [(1, True), (4, True), (2, True)]  # the held unit, then 4 + 2
        real_batch = store.batch

        @contextmanager
        def failing_batch() -> Iterator[None]:
            with real_batch():
                yield
                raise StoreError("disk full")

        monkeypatch.setattr(store, "batch", failing_batch)
        with pytest.raises(StoreError):
            group.submit(_add_device, store, "lost").result(10)
        assert heard[-1] == (1, False)
    finally:
        group.close()


_SUBMITTER: ContextVar[str] = ContextVar("submitter", default="nobody")


def test_units_run_in_their_submitters_context(store: Store) -> None:
    def seen(_given: object = None) -> str:
        return _SUBMITTER.get()

    def submit_as(name: str, group: GroupCommit) -> Future[str]:
        _SUBMITTER.set(name)  # in this thread's context only
        return group.submit_prepared(seen, lambda prepared: f"{prepared}/{seen()}")

    with _writer(store) as group, ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(submit_as, name, group).result(10) for name in ("alice", "bob")]
        assert [f.result(10) for f in futures] == ["alice/alice", "bob/bob"]
    assert _SUBMITTER.get() == "nobody"  # the writer thread's own context is untouched
