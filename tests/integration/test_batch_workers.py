"""Batch work as procrastinate jobs: the queue's schema comes with our migrations, ``fleetid
worker`` works an authority's queue on PostgreSQL (SQLite runs the same job in process), and
worker processes killed with SIGKILL at random mid-batch lose no job and do none twice."""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, inspect, text
from tests.authority_server import fleetid
from tests.butterfly_fixtures import (
    check_every_certificate_once,
    inside_job,
    job_worker,
    queued_jobs,
)

from fleetid.authority import batch_work
from fleetid.cli import worker as worker_cli
from fleetid.store.job_queue import drop_statements, job_counts
from fleetid.store.migrate import downgrade, ensure_schema

pytest_plugins = ["tests.db_fixtures"]

_QUEUE_TABLES = {
    "procrastinate_jobs",
    "procrastinate_workers",
    "procrastinate_events",
    "procrastinate_periodic_defers",
}
_PUBLIC = {"FLEETID_PUBLIC_URL": "https://ca.example.net"}  # what the CRLs name


def _routines(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return {
            str(name)
            for (name,) in connection.execute(
                text(
                    "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
                    " WHERE n.nspname = current_schema() AND p.proname LIKE 'procrastinate%'"
                )
            )
        }


def test_the_job_queue_schema_is_a_migration_on_postgresql_only(
    database_url_for: Any, engine_for: Any
) -> None:
    pg = engine_for(database_url_for("postgresql"))
    ensure_schema(pg)
    assert set(inspect(pg).get_table_names()) >= _QUEUE_TABLES
    functions = {s.split()[-2] for s in drop_statements() if s.startswith("DROP FUNCTION")}
    assert functions and _routines(pg) == functions
    downgrade(pg, "0014")
    assert not _QUEUE_TABLES & set(inspect(pg).get_table_names())
    assert _routines(pg) == set()
    ensure_schema(pg)  # and back
    assert set(inspect(pg).get_table_names()) >= _QUEUE_TABLES
    sqlite = engine_for(database_url_for("sqlite"))
    ensure_schema(sqlite)
    assert not _QUEUE_TABLES & set(inspect(sqlite).get_table_names())


def test_the_cli_names_the_jobs_the_workers_run() -> None:
    assert worker_cli.JOBS == batch_work.JOBS


def _filter_files(data: Path) -> list[str]:
    directory = data / "revocation" / "filter"
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_fleetid_worker_publishes_revocation_from_the_postgresql_queue(
    tmp_path: Path, database_url_for: Any, engine_for: Any
) -> None:
    url = database_url_for("postgresql")
    data = tmp_path / "authority"
    env = {**os.environ, "FLEETID_DATABASE_URL": url, **_PUBLIC}
    assert fleetid("ca", "init", "--data-dir", str(data), env=env).returncode == 0
    deferred = fleetid("worker", "defer", "publish-revocation", "--data-dir", str(data), env=env)
    assert deferred.returncode == 0, deferred.stderr
    assert deferred.stdout.startswith("deferred publish-revocation job ")
    engine = engine_for(url)
    assert job_counts(engine) == {"todo": 1}
    assert _filter_files(data) == []  # queued, not done
    ran = fleetid("worker", "run", "--once", "--data-dir", str(data), env=env)
    assert ran.returncode == 0, ran.stderr
    assert job_counts(engine) == {"succeeded": 1}
    assert _filter_files(data) == ["full.fidf"]
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM crl_publications")).scalar_one() > 0


def test_on_sqlite_the_same_job_runs_in_process(tmp_path: Path) -> None:
    data = tmp_path / "authority"
    env = {**os.environ, **_PUBLIC}
    assert fleetid("ca", "init", "--data-dir", str(data), env=env).returncode == 0
    ran = fleetid("worker", "defer", "publish-revocation", "--data-dir", str(data), env=env)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.splitlines()[-1].startswith("filter full watermark ")
    assert _filter_files(data) == ["full.fidf"]
    refused = fleetid("worker", "run", "--data-dir", str(data), env=env)
    assert refused.returncode == 1
    assert "workers need PostgreSQL" in refused.stderr


# -- several worker processes, killed at random mid-batch --------------------------------------

_VEHICLES = 6
_PER_PERIOD = 6
_WORKERS = 3
_KILLS = 3


def test_workers_killed_at_random_mid_batch_lose_no_job_and_do_none_twice(
    tmp_path: Path, database_url_for: Any, engine_for: Any
) -> None:
    url = database_url_for("postgresql")
    engine = engine_for(url)
    batch, queue, asked = queued_jobs(
        url, engine, vehicles=_VEHICLES, per_period=_PER_PERIOD, prefix="K"
    )

    context = multiprocessing.get_context("fork")
    rng = random.Random()
    marks = tmp_path
    workers = [
        context.Process(target=job_worker, args=(url, batch, marks)) for _ in range(_WORKERS)
    ]
    for w in workers:
        w.start()
    killed = 0
    deadline = time.monotonic() + 60
    while killed < _KILLS:
        assert time.monotonic() < deadline, f"only {killed} kills landed mid-job"
        time.sleep(rng.uniform(0, 0.1))
        busy = [w for w in workers if inside_job(marks, w.pid)]
        if not busy:
            continue
        victim = rng.choice(busy)  # inside a job: a claimed request not yet committed, or more
        workers.remove(victim)
        assert victim.pid is not None
        os.kill(victim.pid, signal.SIGKILL)
        victim.join()
        assert victim.exitcode == -signal.SIGKILL
        killed += 1
        fresh = context.Process(target=job_worker, args=(url, batch, marks))
        fresh.start()
        workers.append(fresh)
    while job_counts(engine)["succeeded"] < _VEHICLES:
        assert time.monotonic() < deadline + 30, f"jobs left: {job_counts(engine)}"
        assert all(w.is_alive() for w in workers)
        time.sleep(0.1)
    for w in workers:
        assert w.pid is not None
        os.kill(w.pid, signal.SIGTERM)  # procrastinate stops gracefully
        w.join(30)
        assert w.exitcode == 0
    counts = job_counts(engine)
    assert counts == {"succeeded": _VEHICLES}, counts  # none lost, failed or left doing
    with engine.connect() as connection:
        retried = connection.execute(
            text("SELECT count(*) FROM procrastinate_jobs WHERE attempts > 0")
        ).scalar_one()
    assert retried >= 1  # a killed worker's job was put back and run again
    check_every_certificate_once(queue, asked, _PER_PERIOD)


def _crl_numbers(engine: Engine) -> dict[tuple[int, int], list[int]]:
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT issuer_id, shard, crl_number FROM crl_publications ORDER BY crl_number")
        ).all()
    numbers: dict[tuple[int, int], list[int]] = {}
    for issuer, shard, number in rows:
        numbers.setdefault((int(issuer), int(shard)), []).append(int(number))
    return numbers


@pytest.mark.slow  # about 20 s: a worker killed, then another once the first is seen dead
def test_a_worker_killed_mid_publication_leaves_every_crl_in_sequence(
    tmp_path: Path, database_url_for: Any, engine_for: Any
) -> None:
    url = database_url_for("postgresql")
    data = tmp_path / "authority"
    env = {**os.environ, "FLEETID_DATABASE_URL": url, **_PUBLIC}
    assert fleetid("ca", "init", "--data-dir", str(data), env=env).returncode == 0
    assert fleetid("worker", "defer", "publish-revocation", "--data-dir", str(data), env=env)
    engine = engine_for(url)
    code = "import sys; from fleetid.cli import main; sys.exit(main())"
    worker = subprocess.Popen(
        [sys.executable, "-c", code, "worker", "run", "--data-dir", str(data)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while job_counts(engine)["doing"] == 0:
            assert time.monotonic() < deadline, "the worker never took the job"
            time.sleep(0.01)
        time.sleep(random.uniform(0, 0.05))  # a random point inside the publication
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    finally:
        worker.kill()
        worker.wait()
    assert job_counts(engine) == {"doing": 1}, "the kill did not land inside the job"
    before = sum(len(n) for n in _crl_numbers(engine).values())
    while job_counts(engine) != {"succeeded": 1}:  # once the dead worker's heartbeat is stale
        assert time.monotonic() < deadline, f"never recovered: {job_counts(engine)}"
        ran = fleetid("worker", "run", "--once", "--data-dir", str(data), env=env)
        assert ran.returncode == 0, ran.stderr
    numbers = _crl_numbers(engine)
    assert sum(len(n) for n in numbers.values()) > before  # the second run finished the work
    assert len(numbers) == 17  # 16 shards of the issuing CA and the root's one CRL
    for (issuer, shard), sequence in numbers.items():  # no gap, no twin
        # an issuing-CA shard: its full CRL then its delta; the root's CRL: a full one alone
        assert sequence == ([1] if shard == -1 else [1, 2]), (issuer, shard, sequence)
    assert _filter_files(data) == ["full.fidf"]
    verify = ["audit", "verify", "--data-dir", str(data), "--database-url", url]
    assert fleetid(*verify, env=env).returncode == 0
