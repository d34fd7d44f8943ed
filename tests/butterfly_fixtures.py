"""A V2X hierarchy with its butterfly authorities (RA, pseudonym CA, LA1, LA2) and vehicles that
ask them for batches, for the batch tests."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from fleetid.authority import batch_work
from fleetid.authority.v2x.batch_pki import ButterflyAuthorities, build_butterfly_authorities
from fleetid.crypto.v2xkeys import CURVES
from fleetid.device.pseudonyms import PendingBatch, Pseudonym, PseudonymRequester
from fleetid.policy.v2x import CAM_SSP, PSID_CAM
from fleetid.store.job_queue import run_worker
from tests.v2x_fixtures import Pki, new_pki

__all__ = [
    "CAM_PERMISSIONS",
    "BatchPki",
    "check_every_certificate_once",
    "inside_job",
    "job_worker",
    "new_batch_pki",
    "queued_jobs",
]

CAM_PERMISSIONS: list[dict[str, Any]] = [{"psid": PSID_CAM, "ssp": ("bitmapSsp", CAM_SSP)}]


@dataclass
class BatchPki:
    pki: Pki
    authorities: ButterflyAuthorities
    implicit: bool

    def vehicle(self, its_id: bytes = b"VIN-0001", *, unified: bool = True) -> PseudonymRequester:
        station = self.pki.enrolled(its_id)
        assert station.enrolment_credential is not None
        return PseudonymRequester(
            ec_signer=station.enrolment_signer(),
            ec_certificate=station.enrolment_credential.encoded,
            ra_certificate=self.authorities.ra.certificate.encoded,
            ca_certificate=self.authorities.ca.certificate,
            curve=CURVES[self.pki.hierarchy.family.end_entity],
            implicit=self.implicit,
            unified=unified,
        )

    def prepare(self, vehicle: PseudonymRequester, i: int = 0) -> PendingBatch:
        """The vehicle's batch request for period i, not sent yet."""
        schedule = self.authorities.schedule
        return vehicle.batch_request(
            period_start=schedule.start(i),
            duration=schedule.duration,
            app_permissions=CAM_PERMISSIONS,
            now=self.pki.clock.now(),
        )

    def request(self, vehicle: PseudonymRequester, i: int = 0) -> PendingBatch:
        pending = self.prepare(vehicle, i)
        vehicle.read_ack(pending, self.authorities.ra.handle_batch_request(pending.message))
        return pending

    def issue_pending(self) -> None:
        """The RA forwards everything pending (shuffled), the CA answers, the RA stores."""
        ra, ca = self.authorities.ra, self.authorities.ca
        ra.accept_responses(ca.issue_batch(ra.forward(), self.pki.clock.now()))

    def week(self, vehicle: PseudonymRequester, i: int = 0) -> list[Pseudonym]:
        pending = self.request(vehicle, i)
        self.issue_pending()
        return vehicle.reconstruct(pending, self.authorities.ra.download(pending.batch_id))


def new_batch_pki(
    family: str = "nist", *, implicit: bool = False, per_period: int = 20
) -> BatchPki:
    pki = new_pki(family)
    authorities = build_butterfly_authorities(
        pki.hierarchy, implicit=implicit, certificates_per_period=per_period
    )
    return BatchPki(pki=pki, authorities=authorities, implicit=implicit)


class _SlowClock:
    """The batch's clock, read once per claimed row, slow enough that kills land mid-job; each
    reading touches ``mark`` (the process is inside a job)."""

    def __init__(self, clock: Any, mark: Path) -> None:
        self._clock = clock
        self._mark = mark

    def now(self) -> datetime:
        self._mark.touch()
        time.sleep(0.15)
        return self._clock.now()  # type: ignore[no-any-return]


def job_worker(url: str, batch: BatchPki, marks: Path) -> None:
    """A ``fleetid worker`` of the batch's pseudonym CA (a forked process: the CA's keys are
    inherited), one request per claim, until it is stopped; ``marks/<pid>`` is touched at
    every request it answers (``inside_job``)."""
    a = batch.authorities
    clock = _SlowClock(batch.pki.clock, marks / str(os.getpid()))
    app = batch_work.butterfly_app(url, a.ca, a.schedule, clock, claim=1)
    run_worker(app)


def inside_job(marks: Path, pid: int | None) -> bool:
    """Whether the worker ``pid`` answered a request in the last 0.3 s: it is inside a job
    (its job's requests come every 0.15 s)."""
    try:
        return time.time() - (marks / str(pid)).stat().st_mtime < 0.3
    except FileNotFoundError:
        return False


Asked = list[tuple[PseudonymRequester, PendingBatch]]


def queued_jobs(
    url: str, engine: Any, *, vehicles: int, per_period: int, prefix: str
) -> tuple[BatchPki, Any, Asked]:
    """A batch PKI whose vehicles' requests are in the butterfly queue at ``url`` (``engine``),
    with one procrastinate job per batch deferred: (pki, queue, what each vehicle asked)."""
    from fleetid.authority.v2x.batch_jobs import enqueue_pending
    from fleetid.store.butterfly_queue import ButterflyQueue
    from fleetid.store.migrate import ensure_schema

    ensure_schema(engine)
    batch = new_batch_pki("nist", per_period=per_period)
    asked = []
    for n in range(vehicles):
        vehicle = batch.vehicle(f"VIN-{prefix}{n}".encode())
        asked.append((vehicle, batch.request(vehicle)))
    queue = ButterflyQueue(engine)
    assert enqueue_pending(batch.authorities.ra, queue) == vehicles * per_period
    a = batch.authorities
    app = batch_work.butterfly_app(url, a.ca, a.schedule, batch.pki.clock)
    assert batch_work.defer_batches(app, queue) == vehicles
    assert batch_work.defer_batches(app, queue) == 0  # one job per batch, however often asked
    return batch, queue, asked


def check_every_certificate_once(queue: Any, asked: Asked, per_period: int) -> None:
    """Every request answered once: one certificate per (i, j), none issued twice, each one
    decrypted and reconstructed by its vehicle."""
    from fleetid.authority.v2x.batch_jobs import download_from_queue

    assert queue.unanswered() == 0
    assert queue.issued_count() == len(asked) * per_period
    seen: set[bytes] = set()
    for vehicle, pending in asked:
        pseudonyms = vehicle.reconstruct(pending, download_from_queue(queue, pending.batch_id))
        assert [p.j for p in pseudonyms] == list(range(per_period))
        seen |= {p.certificate.hashed_id8 for p in pseudonyms}
    assert len(seen) == len(asked) * per_period
