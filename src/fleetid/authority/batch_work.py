"""Batch work as jobs: revocation pre-signing and pseudonym batches, run by ``fleetid worker``.

On PostgreSQL each unit of batch work is a procrastinate job (``fleetid.store.job_queue``): any
number of worker processes, on any hosts sharing the database and the HSM configuration, claim
jobs with ``SKIP LOCKED``; a dead worker's job is put back and run again. On SQLite the same
functions are called in the one process (``run_in_process``): the embedded default.

Each job's effect happens once however often the job runs:

* ``publish-revocation`` publishes what is due (CRL shards and deltas, RFC 5280 §5; the offline
  filter), so a second run finds nothing due; its jobs share one procrastinate ``lock``, so two
  workers never publish at once and the CRL numbers stay in sequence.
* ``butterfly-batch`` answers one batch's requests through the butterfly queue's claim
  (``fleetid.store.butterfly_queue``): the answers and the CA's records commit with the claim,
  and a request already answered is never claimed again (IEEE 1609.2.1 §6.3.3: one certificate
  per (i, j)). The queue's rows stay the data model; the job is the unit that is scheduled.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Final

import procrastinate
from procrastinate.exceptions import AlreadyEnqueued

from fleetid.authority.fleet_ca import FleetCa
from fleetid.authority.v2x.batch_jobs import run_worker
from fleetid.authority.v2x.pseudonym_ca import PeriodSchedule, PseudonymCa
from fleetid.clock import Clock, SystemClock
from fleetid.config import Settings
from fleetid.revocation.crl import publisher_for
from fleetid.revocation.publish import FilterPublisher, filter_directory
from fleetid.revocation.registry import RevocationRegistry
from fleetid.store.butterfly_queue import ButterflyQueue
from fleetid.store.engine import open_engine
from fleetid.store.job_queue import job_app

__all__ = [
    "BUTTERFLY_BATCH",
    "JOBS",
    "PUBLISH_REVOCATION",
    "authority_app",
    "butterfly_app",
    "defer_batches",
    "defer_job",
    "publish_revocation",
    "run_in_process",
]

PUBLISH_REVOCATION: Final = "publish-revocation"
BUTTERFLY_BATCH: Final = "butterfly-batch"
JOBS: Final = (PUBLISH_REVOCATION,)  # what `fleetid worker` runs for an authority's directory
_PUBLICATION_LOCK: Final = "fleetid-revocation-publication"

_log = logging.getLogger(__name__)


def publish_revocation(data_dir: Path, *, clock: Clock | None = None) -> list[str]:
    """Publish the revocation artefacts that are due: CRL shards and deltas of every issuer,
    and the offline filter (a delta, or a full one when a rebase is due). One line each."""
    ca = FleetCa.open(Settings.load(data_dir), clock=clock or SystemClock())
    try:
        done = publisher_for(ca, registry=RevocationRegistry(ca.store)).publish()
        lines = [
            f"crl {p.kind} issuer {p.issuer_id} shard {p.shard} number {p.crl_number}"
            f" watermark {p.watermark}"
            for p in done
        ]
        published = FilterPublisher.for_ca(ca, directory=filter_directory(data_dir)).publish()
        lines.append(f"filter {published.kind.name.lower()} watermark {published.watermark}")
    finally:
        ca.close()
    return lines


def authority_app(url: str, data_dir: Path) -> procrastinate.App:
    """The job app of the authority in ``data_dir`` (its database at ``url``, PostgreSQL)."""
    app = job_app(url)

    @app.task(name=PUBLISH_REVOCATION, lock=_PUBLICATION_LOCK, retry=3)
    def _publish() -> None:
        for line in publish_revocation(data_dir):
            _log.info("published %s", line)

    return app


def butterfly_app(
    url: str, ca: PseudonymCa, schedule: PeriodSchedule, clock: Clock, *, claim: int = 20
) -> procrastinate.App:
    """The job app of a pseudonym CA whose butterfly queue is in the database at ``url``
    (``claim``: requests per claim transaction)."""
    app = job_app(url)
    queue = ButterflyQueue(open_engine(url))

    @app.task(name=BUTTERFLY_BATCH, retry=3)
    def _batch(batch_id: str) -> None:
        batch = bytes.fromhex(batch_id)
        answered = run_worker(queue, ca, schedule, clock, claim=claim, batch_id=batch)
        _log.info("butterfly batch %s: %d answered", batch_id, answered)

    return app


def defer_job(app: procrastinate.App, name: str) -> int:
    """Put one job of the job ``name`` in the queue; its id."""
    with app.open():
        return app.tasks[name].defer()


def defer_batches(app: procrastinate.App, queue: ButterflyQueue) -> int:
    """One job per batch with unanswered requests (none for a batch that has one waiting: the
    batch id is its queueing lock); how many were deferred."""
    deferred = 0
    with app.open():
        for batch_id in queue.pending_batches():
            task = app.tasks[BUTTERFLY_BATCH].configure(queueing_lock=batch_id.hex())
            try:
                task.defer(batch_id=batch_id.hex())
            except AlreadyEnqueued:
                continue
            deferred += 1
    return deferred


def run_in_process(name: str, data_dir: Path) -> list[str]:
    """The embedded default (SQLite): the job ``name`` run now, in this process."""
    jobs: dict[str, Callable[[Path], list[str]]] = {PUBLISH_REVOCATION: publish_revocation}
    return jobs[name](data_dir)
