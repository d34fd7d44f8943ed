"""The job queue of batch work on PostgreSQL: procrastinate (a PostgreSQL job queue whose workers
claim jobs with ``SELECT ... FOR UPDATE SKIP LOCKED``, retry failed ones and keep every job in
one table, ``procrastinate_jobs``).

Its schema is part of ours: revision 0015 applies ``queue_schema()`` on PostgreSQL, so
``ensure_schema`` (every entry point) creates it, in the search path the URL names. SQLite has
no job queue: the same job functions run in process (``fleetid.authority.batch_work``).

A worker killed with SIGKILL leaves its job ``doing``; procrastinate's workers keep a heartbeat
in ``procrastinate_workers``, and ``requeue_stalled`` puts the jobs of workers whose heartbeat
stopped back to ``todo`` (every worker calls it before it starts and between jobs). A job is
therefore run at least once; the job functions make the effect happen once (each commits its
work in one transaction that only does what is not yet done).
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from typing import Final

import procrastinate
from procrastinate.schema import SchemaManager
from psycopg.conninfo import make_conninfo
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

__all__ = [
    "HEARTBEAT_SECONDS",
    "STALLED_SECONDS",
    "drop_statements",
    "is_queue_database",
    "job_app",
    "job_counts",
    "libpq_conninfo",
    "queue_schema",
    "requeue_stalled",
    "requeue_stalled_async",
    "run_worker",
]

HEARTBEAT_SECONDS: Final = 1.0  # a worker's heartbeat interval
STALLED_SECONDS: Final = 5.0  # a worker silent this long is dead: its jobs go back to todo

_CREATED = re.compile(r"^CREATE (TYPE|TABLE|FUNCTION) (\w+)", re.MULTILINE)


def queue_schema() -> str:
    """procrastinate's schema, as its own package ships it (revision 0015 applies it)."""
    return str(SchemaManager.get_schema())


def drop_statements() -> list[str]:
    """What undoes ``queue_schema`` (tables first: their triggers go with them)."""
    created = _CREATED.findall(queue_schema())
    order = {"TABLE": 0, "FUNCTION": 1, "TYPE": 2}
    return [
        f"DROP {kind} IF EXISTS {name} CASCADE"
        for kind, name in sorted(created, key=lambda c: order[c[0]])
    ]


def is_queue_database(url: str) -> bool:
    """Whether the database at ``url`` has the job queue (PostgreSQL) or runs work in process."""
    return make_url(url).get_backend_name() == "postgresql"


def libpq_conninfo(url: str) -> str:
    """The libpq connection string (keyword=value, each value quoted by psycopg) of a SQLAlchemy
    PostgreSQL URL, its query options kept: ``options`` may hold several ``-c`` settings (a
    search_path and the statement timeout), whose spaces a rendered URL would turn into ``+``,
    which libpq does not read as a space."""
    parsed = make_url(url)
    params: dict[str, object] = {
        "host": parsed.host,
        "port": parsed.port,
        "user": parsed.username,
        "password": parsed.password,
        "dbname": parsed.database,
    }
    for key, value in parsed.query.items():
        params[key] = value if isinstance(value, str) else value[-1]
    return make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})


def job_app(url: str) -> procrastinate.App:
    """A procrastinate app on the database at ``url`` (PostgreSQL); job functions are added by
    ``fleetid.authority.batch_work``."""
    connector = procrastinate.PsycopgConnector(conninfo=libpq_conninfo(url), min_size=1)
    return procrastinate.App(connector=connector)


def requeue_stalled(app: procrastinate.App, seconds: float = STALLED_SECONDS) -> int:
    """Put back to ``todo`` every job a dead worker held (no heartbeat for ``seconds``)."""

    async def run() -> int:
        async with app.open_async():
            return await requeue_stalled_async(app, seconds)

    return asyncio.run(run())


async def requeue_stalled_async(app: procrastinate.App, seconds: float = STALLED_SECONDS) -> int:
    """``requeue_stalled`` on an app already open."""
    stalled = list(await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=seconds))
    for job in stalled:
        await app.job_manager.retry_job(job)
    return len(stalled)


def job_counts(engine: Engine) -> Counter[str]:
    """Jobs by status (``todo``, ``doing``, ``succeeded``, ``failed``...)."""
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT status::text, count(*) FROM procrastinate_jobs GROUP BY status")
        ).all()
    return Counter({str(status): int(count) for status, count in rows})


async def _requeue_forever(app: procrastinate.App, seconds: float) -> None:
    while True:
        await requeue_stalled_async(app, seconds)
        await asyncio.sleep(seconds / 2)


def run_worker(app: procrastinate.App, *, concurrency: int = 1, wait: bool = True) -> None:
    """Run a worker of ``app`` until it is stopped (SIGINT/SIGTERM: it finishes its jobs first)
    or, with ``wait=False``, until no job is left. Beside it, the jobs of dead workers are put
    back to ``todo`` every ``STALLED_SECONDS / 2``."""

    async def run() -> None:
        async with app.open_async():
            await requeue_stalled_async(app)
            watcher = asyncio.create_task(_requeue_forever(app, STALLED_SECONDS))
            try:
                await app.run_worker_async(
                    concurrency=concurrency,
                    wait=wait,
                    update_heartbeat_interval=HEARTBEAT_SECONDS,
                    stalled_worker_timeout=STALLED_SECONDS,
                    fetch_job_polling_interval=1.0,
                )
            finally:
                watcher.cancel()

    asyncio.run(run())
