"""Parallel batch issuance: workers claim the RA's queue transactionally, and a worker killed
mid-batch (SIGKILL, on PostgreSQL) or failing mid-batch (SQLite, one process) leaves no
(device, i, j) issued twice and none skipped."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, update
from tests.butterfly_fixtures import BatchPki, check_every_certificate_once, new_batch_pki

from fleetid.authority.v2x.batch_jobs import (
    answer_rows,
    download_from_queue,
    enqueue_pending,
    issue_in_parallel,
    record_from_queue,
    run_worker,
)
from fleetid.authority.v2x.misbehaviour import revoke_reported_pseudonym
from fleetid.device.pseudonyms import PendingBatch, PseudonymRequester
from fleetid.errors import BatchPendingError, BatchRefusedError, NotFoundError
from fleetid.store.butterfly_queue import ButterflyQueue, WorkRow
from fleetid.store.butterfly_tables import butterfly_work
from fleetid.store.engine import open_engine

pytest_plugins = ["tests.db_fixtures"]

_VEHICLES = 8
_PER_PERIOD = 10
_ENGINES: list[Engine] = []


@pytest.fixture(autouse=True)
def _dispose_engines() -> Iterator[None]:
    yield
    while _ENGINES:
        _ENGINES.pop().dispose()


def _engine(url: str) -> Engine:
    engine = open_engine(url)
    _ENGINES.append(engine)
    return engine


def _queued(
    url: str,
) -> tuple[BatchPki, ButterflyQueue, list[tuple[PseudonymRequester, PendingBatch]]]:
    batch = new_batch_pki("nist", per_period=_PER_PERIOD)
    asked = []
    for n in range(_VEHICLES):
        vehicle = batch.vehicle(f"VIN-W{n}".encode())
        asked.append((vehicle, batch.request(vehicle)))
    queue = ButterflyQueue(_engine(url))
    queue.create_tables()
    assert enqueue_pending(batch.authorities.ra, queue) == _VEHICLES * _PER_PERIOD
    return batch, queue, asked


def _check_every_certificate_once(
    queue: ButterflyQueue, asked: list[tuple[PseudonymRequester, PendingBatch]]
) -> None:
    check_every_certificate_once(queue, asked, _PER_PERIOD)


def _victim(url: str, batch: BatchPki, inside: Any) -> None:
    """A worker that issues slowly and says when it is inside a claimed, uncommitted batch."""
    queue = ButterflyQueue(open_engine(url))
    authorities = batch.authorities

    def slow(rows: list[WorkRow]) -> list[Any]:
        answers = []
        for row in rows:
            answers += answer_rows(
                authorities.ca, authorities.schedule, [row], batch.pki.clock.now()
            )
            inside.set()
            time.sleep(0.2)
        return answers

    while queue.claim_and_answer(5, slow):
        pass


def _second_worker(url: str, batch: BatchPki) -> None:
    engine = open_engine(url)
    authorities = batch.authorities
    run_worker(
        ButterflyQueue(engine), authorities.ca, authorities.schedule, batch.pki.clock, claim=4
    )
    engine.dispose()


def test_a_worker_killed_mid_batch_on_postgresql_loses_and_repeats_nothing(
    database_url_for: Any,
) -> None:
    url = database_url_for("postgresql")
    batch, queue, asked = _queued(url)
    context = multiprocessing.get_context("fork")
    inside = context.Event()
    victim = context.Process(target=_victim, args=(url, batch, inside))
    victim.start()
    assert inside.wait(30), "the victim never got inside a batch"
    second = context.Process(target=_second_worker, args=(url, batch))
    second.start()
    deadline = time.monotonic() + 60
    while queue.issued_count() == 0:
        assert time.monotonic() < deadline, "the second worker issued nothing"
        time.sleep(0.02)
    assert victim.pid is not None
    os.kill(victim.pid, signal.SIGKILL)  # a signed certificate or two die with it, uncommitted
    victim.join()
    second.join()
    assert victim.exitcode == -signal.SIGKILL
    assert second.exitcode == 0
    # What the victim held is claimable once PostgreSQL has ended its session.
    deadline = time.monotonic() + 20
    while queue.unanswered() and time.monotonic() < deadline:
        run_worker(queue, batch.authorities.ca, batch.authorities.schedule, batch.pki.clock)
        time.sleep(0.05)
    _check_every_certificate_once(queue, asked)


def test_every_core_drains_the_queue_on_postgresql(database_url_for: Any) -> None:
    url = database_url_for("postgresql")
    batch, queue, asked = _queued(url)
    issue_in_parallel(url, batch.authorities.ca, batch.authorities.schedule, batch.pki.clock)
    _check_every_certificate_once(queue, asked)
    # A certificate a worker process issued is reported: its record is in the shared store.
    vehicle, pending = asked[0]
    reported = vehicle.reconstruct(pending, download_from_queue(queue, pending.batch_id))[3]
    a = batch.authorities
    with pytest.raises(NotFoundError):
        a.ca.record_for(reported.certificate.encoded)  # not in this process's memory
    chain = revoke_reported_pseudonym(
        reported.certificate.encoded,
        ca=a.ca,
        la1=a.la1,
        la2=a.la2,
        ra=a.ra,
        record_for=lambda certificate: record_from_queue(queue, certificate),
    )
    assert chain.i == 0
    with pytest.raises(BatchRefusedError, match="revoked"):
        batch.request(vehicle, 1)


def test_a_batch_failing_midway_on_sqlite_commits_nothing_of_it(database_url_for: Any) -> None:
    batch, queue, asked = _queued(database_url_for("sqlite"))
    authorities = batch.authorities

    def crash_after_three(rows: list[WorkRow]) -> list[Any]:
        answer_rows(authorities.ca, authorities.schedule, rows[:3], batch.pki.clock.now())
        raise RuntimeError("the worker dies here")

    with pytest.raises(RuntimeError):
        queue.claim_and_answer(10, crash_after_three)
    assert queue.unanswered() == _VEHICLES * _PER_PERIOD
    assert queue.issued_count() == 0
    with pytest.raises(BatchPendingError):
        download_from_queue(queue, asked[0][1].batch_id)
    run_worker(queue, authorities.ca, authorities.schedule, batch.pki.clock, claim=7)
    _check_every_certificate_once(queue, asked)


def test_a_request_cannot_be_issued_twice(database_url_for: Any) -> None:
    """Once answered, a request is claimed by nobody, and answering it again fails the claim."""
    url = database_url_for("sqlite")
    batch, queue, _ = _queued(url)
    run_worker(queue, batch.authorities.ca, batch.authorities.schedule, batch.pki.clock)
    assert queue.claim_and_answer(5, lambda rows: pytest.fail("claimed an answered row")) == 0
    engine = _engine(url)
    with engine.begin() as conn:
        conn.execute(update(butterfly_work).values(response=None))  # as if never answered ...
    authorities = batch.authorities

    def answer_then_steal(rows: list[WorkRow]) -> list[Any]:
        answers = answer_rows(authorities.ca, authorities.schedule, rows, batch.pki.clock.now())
        with engine.begin() as conn:  # ... and another writer answers the first one meanwhile
            conn.execute(
                update(butterfly_work)
                .where(butterfly_work.c.request_id == rows[0].request_id)
                .values(response=b"other")
            )
        return answers

    with pytest.raises(RuntimeError, match="answered by someone else"):
        queue.claim_and_answer(1, answer_then_steal)
    assert queue.issued_count() == _VEHICLES * _PER_PERIOD  # nothing of the failed claim
