"""The authority's writing requests go through one group-committing writer per app.

Enrolment, re-enrolment, challenges and release each end in a small transaction; under load the
commits, not the writes, would set the pace. ``install`` gives the app a
``fleetid.store.group_commit.GroupCommit`` over the CA's store, closed when the app shuts down,
and ``write`` runs a service call on it: concurrent requests share one commit, and each answer
leaves only after its writes are durable. Each batch's size and the database pool's
connections go to the metrics (``fleetid.metrics``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from fastapi import FastAPI, Request

from fleetid import metrics
from fleetid.store.group_commit import GroupCommit
from fleetid.store.pool_status import pool_connections
from fleetid.store.repositories import Store

__all__ = ["install", "write", "write_prepared"]

T = TypeVar("T")
P = TypeVar("P")


def install(app: FastAPI, store: Store) -> None:
    def on_batch(size: int, committed: bool) -> None:
        outcome = "committed" if committed else "failed"
        metrics.GROUP_COMMIT_BATCH.labels(outcome).observe(size)
        for state, count in pool_connections(store.engine).items():
            metrics.DB_POOL_CONNECTIONS.labels(state).set(count)

    writer = GroupCommit(store, on_batch=on_batch)
    app.state.writes = writer
    previous = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app_: FastAPI) -> AsyncIterator[Any]:
        try:
            async with previous(app_) as state:
                yield state
        finally:
            await asyncio.to_thread(writer.close)

    app.router.lifespan_context = lifespan


async def write(request: Request, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` on the app's writer; returns once its batch has committed."""
    writer: GroupCommit = request.app.state.writes
    return await asyncio.wrap_future(writer.submit(fn, *args))


async def write_prepared(request: Request, prepare: Callable[[], P], run: Callable[[P], T]) -> T:
    """``run(prepare())`` on the app's writer, ``prepare`` outside the batch's transaction."""
    writer: GroupCommit = request.app.state.writes
    return await asyncio.wrap_future(writer.submit_prepared(prepare, run))
