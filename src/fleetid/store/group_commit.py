"""Group commit: concurrent requests share one database transaction and one commit.

A server answering many small writes (a challenge, an enrolment) spends more on committing
than on the write: each commit is a WAL flush (``synchronous=FULL`` on SQLite, the WAL record on
PostgreSQL), and on SQLite the writers take turns for the one write lock. ``GroupCommit`` runs
submitted units on one writer thread. It takes what has queued up (at most ``max_batch``), runs
each unit inside one ``Store.batch()`` transaction, where each unit's own
``Store.transaction()`` is a SAVEPOINT, commits once, and only then settles the units'
futures. A unit may bring a ``prepare`` step, run before the transaction opens (checks that need
no database, kept out of the write lock). So:

* a unit that raises is rolled back to its savepoint alone, and its caller gets the exception;
* a caller never sees success before its writes are durable: a crash before the commit loses
  the whole batch and answers none of it;
* if the commit itself fails, every unit of the batch fails with that ``StoreError``
  (``DatabaseUnavailableError`` when the server connection was lost, in a unit or at the commit).

Units run one after another, as a serialisable schedule in queue order; a unit sees the writes
of the units before it in the batch. Units must not have side effects outside the database that
assume their commit (none of the enrolment operations do).

Each unit runs in the context (``contextvars``) of the code that submitted it, so that what it
logs belongs to the submitter's request (``fleetid.structured_logs``). ``on_batch``, if given,
hears the size of every batch the writer ran and whether its commit succeeded (the metrics).
"""

from __future__ import annotations

import contextvars
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from fleetid.errors import StoreError
from fleetid.store.engine import as_store_error, is_unavailable
from fleetid.store.repositories import Store

__all__ = ["GroupCommit"]

T = TypeVar("T")
P = TypeVar("P")

_log = logging.getLogger(__name__)
_DEFAULT_MAX_BATCH: Final = 32


@dataclass(frozen=True)
class _Unit:
    prepare: Callable[[], Any]  # before the batch's transaction, without the write lock
    run: Callable[[Any], Any]  # inside it, given what ``prepare`` returned
    future: Future[Any]
    context: contextvars.Context  # the submitter's


class GroupCommit:
    """One writer thread for ``store``; ``submit`` queues a unit and returns its future."""

    def __init__(
        self,
        store: Store,
        *,
        max_batch: int = _DEFAULT_MAX_BATCH,
        on_batch: Callable[[int, bool], None] | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError("a batch holds at least one unit")
        self._store = store
        self._on_batch = on_batch
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Unit | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        """Run ``fn(*args)`` in the next batch; the future settles after the batch commits."""
        return self.submit_prepared(lambda: args, lambda given: fn(*given))

    def submit_prepared(self, prepare: Callable[[], P], run: Callable[[P], T]) -> Future[T]:
        """Run ``prepare()`` before the next batch's transaction opens (checks that need no
        database: on SQLite the other processes' writers may write meanwhile), then ``run`` on
        its result inside the batch. If ``prepare`` raises, the unit fails and the batch goes on
        without it."""
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise StoreError("the store's writer is closed")
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._writer, name="fleetid-group-commit", daemon=True
                )
                self._thread.start()
            unit = _Unit(
                prepare=prepare, run=run, future=future, context=contextvars.copy_context()
            )
            self._queue.put(unit)
        return future

    def close(self) -> None:
        """Finish what is queued, then stop the writer thread."""
        with self._lock:
            self._closed = True
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join()

    def _writer(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            units = [first]
            stop = False
            while len(units) < self._max_batch:
                try:
                    unit = self._queue.get_nowait()
                except queue.Empty:
                    break
                if unit is None:
                    stop = True
                    break
                units.append(unit)
            self._run_batch(units)
            if stop:
                return

    def _run_batch(self, units: list[_Unit]) -> None:
        outcomes: dict[int, tuple[bool, Any]] = {}
        ready: dict[int, Any] = {}  # unit index -> what its ``prepare`` returned
        for index, unit in enumerate(units):
            if not unit.future.set_running_or_notify_cancel():
                outcomes[index] = (False, None)
                continue
            try:
                ready[index] = unit.context.run(unit.prepare)
            except Exception as exc:  # the unit's own refusal, before any write
                outcomes[index] = (False, exc)
        if ready:
            committed = False
            try:
                with self._store.batch():
                    for index, prepared in ready.items():
                        unit = units[index]
                        try:
                            outcomes[index] = (True, unit.context.run(unit.run, prepared))
                        except Exception as exc:  # the unit's own failure, rolled back alone
                            outcomes[index] = (False, exc)
                committed = True
            except Exception as exc:  # the batch's own BEGIN or COMMIT: nothing of it is durable
                _log.error("group commit of %d units failed: %s", len(ready), exc)
                # A unit that lost the server connection is why the batch failed: say so.
                lost = [e for ok, e in outcomes.values() if not ok and is_unavailable(e)]
                cause = lost[0] if lost else exc
                failure = as_store_error(cause, "the transaction was not committed")
                outcomes.update((index, (False, failure)) for index in ready)
            if self._on_batch is not None:
                self._on_batch(len(ready), committed)
        for index, unit in enumerate(units):
            ok, value = outcomes[index]
            if unit.future.cancelled():
                continue
            if ok:
                unit.future.set_result(value)
            else:
                unit.future.set_exception(value)
