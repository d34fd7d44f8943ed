"""Pseudonym certificates per second per worker core, as jobs of ``fleetid worker`` on
PostgreSQL, beside the same batches answered in process in the same run (the baseline).

Each round makes fresh batch requests (one per vehicle, a new pseudonym period each round: the
RA refuses a replay), queues them in the butterfly queue in a PostgreSQL schema of the round's
own, and answers them twice over alternating rounds:

* ``in-process``: ``batch_jobs.run_worker`` for each batch, in this process (SQLite's embedded
  default does the same on its own database);
* ``job``: one procrastinate job per batch (``defer_batches``), answered by one forked worker
  process (``run_worker``, concurrency 1) until none is left.

Per round it prints certificates, wall seconds, the CPU seconds of the process that did the work
(this one, or the worker's from ``wait4``) and certificates per CPU second; then the medians and
the ratio job / in-process. The load average is printed beside them: the machine is shared.
PostgreSQL's own CPU is not counted (it is another process; see docs/operations.md, "Sizing").

Run: ``.venv/bin/python benchmarks/worker.py [vehicles] [per-period] [rounds]``
(``$FLEETID_BENCH_POSTGRES``: the server, default ``postgres@127.0.0.1:5432/test``). The last
line is for tools::

    worker: <j> certs/s per core as jobs, <p> in process, ratio <r>
"""

from __future__ import annotations

import os
import secrets
import statistics
import sys
import time
from typing import Any
from urllib.parse import quote

from sqlalchemy import create_engine, text

from fleetid.authority import batch_work
from fleetid.authority.v2x.batch_jobs import enqueue_pending
from fleetid.authority.v2x.batch_jobs import run_worker as run_batch
from fleetid.authority.v2x.batch_pki import ButterflyAuthorities, build_butterfly_authorities
from fleetid.sim.demo_pseudonyms import batch_request, pseudonym_requester, software_cohort
from fleetid.store.butterfly_queue import ButterflyQueue
from fleetid.store.engine import open_engine
from fleetid.store.job_queue import run_worker
from fleetid.store.migrate import ensure_schema

_SERVER = os.environ.get(
    "FLEETID_BENCH_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _queued(
    url: str, requesters: list[Any], authorities: ButterflyAuthorities, period: int, clock: Any
) -> ButterflyQueue:
    queue = ButterflyQueue(open_engine(url))
    ensure_schema(open_engine(url))
    ra = authorities.ra
    for vehicle in requesters:
        pending = batch_request(vehicle, authorities, period, clock.now())
        vehicle.read_ack(pending, ra.handle_batch_request(pending.message))
    enqueue_pending(ra, queue)
    return queue


def _in_process(
    url: str, queue: ButterflyQueue, authorities: ButterflyAuthorities, clock: Any
) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    for batch_id in queue.pending_batches():
        run_batch(queue, authorities.ca, authorities.schedule, clock, batch_id=batch_id)
    return time.perf_counter() - wall, time.process_time() - cpu


def _as_jobs(
    url: str, queue: ButterflyQueue, authorities: ButterflyAuthorities, clock: Any
) -> tuple[float, float]:
    app = batch_work.butterfly_app(url, authorities.ca, authorities.schedule, clock)
    batch_work.defer_batches(app, queue)
    wall = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the worker: a process of its own, as `fleetid worker` is
        try:
            run_worker(app, wait=False)
        finally:
            os._exit(0)
    _, status, usage = os.wait4(pid, 0)
    if status != 0:
        raise SystemExit(f"the worker failed: status {status}")
    return time.perf_counter() - wall, usage.ru_utime + usage.ru_stime


def main() -> None:
    vehicles = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    per_period = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    hierarchy, stations = software_cohort(vehicles)
    authorities = build_butterfly_authorities(hierarchy, certificates_per_period=per_period)
    requesters = [pseudonym_requester(s, authorities) for s in stations]
    clock = hierarchy.clock
    admin = create_engine(_SERVER, isolation_level="AUTOCOMMIT")
    rates: dict[str, list[float]] = {"in-process": [], "job": []}
    period = 0
    try:
        for _ in range(rounds):
            for path, run in (("in-process", _in_process), ("job", _as_jobs)):
                schema = f"fleetid_bench_{secrets.token_hex(4)}"
                with admin.connect() as connection:
                    connection.execute(text(f'CREATE SCHEMA "{schema}"'))
                try:
                    url = f"{_SERVER}?options={quote(f'-csearch_path={schema}')}"
                    queue = _queued(url, requesters, authorities, period, clock)
                    period += 1
                    wall, cpu = run(url, queue, authorities, clock)
                    issued = queue.issued_count()
                    if issued != vehicles * per_period or queue.unanswered():
                        raise SystemExit(f"{path}: {issued} issued of {vehicles * per_period}")
                    rates[path].append(issued / cpu)
                    print(
                        f"{path:10} {issued} certs  wall {wall:6.2f} s  cpu {cpu:6.2f} s"
                        f"  {issued / cpu:7.1f} certs per cpu-s"
                    )
                finally:
                    with admin.connect() as connection:
                        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()
    job, local = statistics.median(rates["job"]), statistics.median(rates["in-process"])
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}")
    ratio = job / local
    print(f"worker: {job:.1f} certs/s per core as jobs, {local:.1f} in process, ratio {ratio:.2f}")


if __name__ == "__main__":
    main()
