"""``fleetid worker run|defer``: batch work as jobs (``fleetid.authority.batch_work``).

* ``run --data-dir DIR [--concurrency N] [--once]`` runs a procrastinate worker on the
  authority's PostgreSQL database: as many as wanted, on any hosts sharing the database and the
  HSM configuration. ``--once`` stops when no job is left. SIGINT/SIGTERM finish the jobs under
  way first; a worker killed outright has its job put back by the next worker.
* ``defer JOB --data-dir DIR`` queues one job (PostgreSQL) or, on SQLite (the embedded
  default, one process), runs it now and prints what it did.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["JOBS", "register"]

# ``fleetid.authority.batch_work.JOBS``, named here so that ``fleetid --help`` does not import the
# job queue (tests/integration/test_batch_workers.py checks that the two agree).
JOBS = ("publish-revocation",)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("worker", help="run batch work (revocation pre-signing) as jobs")
    verbs = parser.add_subparsers(dest="worker_command", metavar="SUBCOMMAND", required=True)
    run = verbs.add_parser("run", help="work the job queue of a PostgreSQL authority")
    run.add_argument("--data-dir", type=Path, required=True, help="the authority's directory")
    run.add_argument("--concurrency", type=int, default=1, help="jobs at once (default 1)")
    run.add_argument("--once", action="store_true", help="stop when no job is left")
    run.set_defaults(func=_run)
    defer = verbs.add_parser("defer", help="queue a job (SQLite: run it now)")
    defer.add_argument("job", choices=JOBS, help="what to do")
    defer.add_argument("--data-dir", type=Path, required=True, help="the authority's directory")
    defer.set_defaults(func=_defer)


def _queue_url(data_dir: Path) -> str | None:
    """The authority's PostgreSQL URL, its schema (and the job queue's) at head; None for
    SQLite."""
    from fleetid.config import Settings
    from fleetid.store.engine import engine_from_settings
    from fleetid.store.job_queue import is_queue_database
    from fleetid.store.migrate import ensure_schema

    engine = engine_from_settings(Settings.load(data_dir))
    try:
        url = engine.url.render_as_string(hide_password=False)
        if not is_queue_database(url):
            return None
        ensure_schema(engine)
        return url
    finally:
        engine.dispose()


def _run(args: argparse.Namespace) -> int:
    from fleetid.authority.batch_work import authority_app
    from fleetid.errors import ConfigError
    from fleetid.store.engine import database_errors
    from fleetid.store.job_queue import run_worker

    if args.concurrency < 1:
        raise ConfigError("--concurrency is at least 1")
    with database_errors():
        url = _queue_url(args.data_dir)
        if url is None:
            raise ConfigError(
                "the authority's database is SQLite: batch work runs in process "
                "(fleetid worker defer JOB runs it now); workers need PostgreSQL"
            )
        run_worker(
            authority_app(url, args.data_dir), concurrency=args.concurrency, wait=not args.once
        )
    return 0


def _defer(args: argparse.Namespace) -> int:
    from fleetid.authority.batch_work import authority_app, defer_job, run_in_process
    from fleetid.store.engine import database_errors

    with database_errors():
        url = _queue_url(args.data_dir)
        if url is None:
            for line in run_in_process(args.job, args.data_dir):
                print(line)
            return 0
        job = defer_job(authority_app(url, args.data_dir), args.job)
    print(f"deferred {args.job} job {job}")
    return 0
