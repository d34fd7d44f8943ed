"""Parallel batch issuance: the pseudonym CA's workers drain the RA's queue in a shared store.

The RA puts its shuffled per-certificate requests into the queue (``enqueue_pending``); any
number of workers, in processes on one machine (``issue_in_parallel``, every core by default) or
on hosts sharing the PostgreSQL store (``run_worker``), claim rows with ``SELECT ... FOR UPDATE
SKIP LOCKED``, expand, issue and write the encrypted answers and the CA's records in the claim's
transaction (``fleetid.store.butterfly_queue``). A worker killed mid-batch commits nothing of
that batch; its rows become claimable again as soon as the database notices the session is
gone. The RA builds each device's download from the answers (``download_from_queue``).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from datetime import datetime

from fleetid.authority.v2x.pseudonym_ca import (
    IssuanceRecord,
    PeriodSchedule,
    PseudonymCa,
    stored_record,
)
from fleetid.authority.v2x.ra import (
    RegistrationAuthority,
    batch_item,
    download_message,
    expand_item,
    work_row,
)
from fleetid.clock import Clock
from fleetid.store.butterfly_queue import ButterflyQueue, IssuedRow, WorkRow
from fleetid.store.engine import open_engine

__all__ = [
    "answer_rows",
    "download_from_queue",
    "enqueue_pending",
    "issue_in_parallel",
    "record_from_queue",
    "run_worker",
]

_log = logging.getLogger(__name__)


def enqueue_pending(ra: RegistrationAuthority, queue: ButterflyQueue) -> int:
    """Move every pending request of the RA (shuffled across devices) into the queue.

    An RA with its own records queues each request as it arrives (``RegistrationAuthority.
    queue``): its workers claim from that queue, and this only takes them off its pending list.
    """
    items = ra.take_pending()
    if ra.queue is None:
        queue.enqueue(work_row(item) for item in items)
    return len(items)


def answer_rows(
    ca: PseudonymCa, schedule: PeriodSchedule, rows: list[WorkRow], now: datetime
) -> list[IssuedRow]:
    """Expand and issue each claimed row: the CA's answer and record for each."""
    answers = []
    for row in rows:
        response, record = ca.issue_with_record(expand_item(batch_item(row), schedule), now)
        answers.append(
            IssuedRow(
                request_id=row.request_id,
                response=bytes(response["acaResponse"]),
                certificate_id=record.certificate_id,
                i=record.i,
                chain_reference1=record.chain_references[0],
                chain_reference2=record.chain_references[1],
            )
        )
    return answers


def run_worker(
    queue: ButterflyQueue,
    ca: PseudonymCa,
    schedule: PeriodSchedule,
    clock: Clock,
    *,
    claim: int = 20,
    batch_id: bytes | None = None,
) -> int:
    """Claim and answer until the queue (or the batch ``batch_id``) has nothing unclaimed; the
    number answered."""
    total = 0
    while True:
        done = queue.claim_and_answer(
            claim, lambda rows: answer_rows(ca, schedule, rows, clock.now()), batch_id=batch_id
        )
        if done == 0:
            return total
        total += done


def _process(url: str, ca: PseudonymCa, schedule: PeriodSchedule, clock: Clock, claim: int) -> None:
    engine = open_engine(url)  # a process of its own needs connections of its own
    try:
        run_worker(ButterflyQueue(engine), ca, schedule, clock, claim=claim)
    finally:
        engine.dispose()


def issue_in_parallel(
    url: str,
    ca: PseudonymCa,
    schedule: PeriodSchedule,
    clock: Clock,
    *,
    processes: int | None = None,
    claim: int = 20,
) -> None:
    """Drain the queue at ``url`` with ``processes`` worker processes (default: every core).

    The workers are forked, so they share the CA's keys without them being copied anywhere.
    """
    count = processes or os.cpu_count() or 1
    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(target=_process, args=(url, ca, schedule, clock, claim))
        for _ in range(count)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    failed = [w.exitcode for w in workers if w.exitcode != 0]
    if failed:
        _log.warning("%d of %d issuance workers failed: %s", len(failed), count, failed)


def record_from_queue(queue: ButterflyQueue, certificate: bytes) -> IssuanceRecord:
    """The CA's record of a certificate its workers issued (for misbehaviour handling)."""
    return stored_record(queue, certificate)


def download_from_queue(queue: ButterflyQueue, batch_id: bytes) -> bytes:
    """The device's RaEeCertBatch, from the queue's answers."""
    return download_message(batch_id, queue.answers(batch_id))
