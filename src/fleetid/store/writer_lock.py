"""The queue for SQLite's one writer, across threads and processes.

SQLite lets one connection write at a time; another that asks (``BEGIN IMMEDIATE``) is told
SQLITE_BUSY and its busy handler sleeps and retries (1, 2, 5, 10 … 100 ms). Under a server's
load, those sleeps, not the writes, set the pace, and the p99 latency. So writers queue before
they ask: threads of one process on a lock, processes (``fleetid serve --workers N``, the CLI)
on an exclusive ``flock(2)`` of a file beside the database, which wakes the next waiter the
moment it is released. SQLite's own locking still decides; this only orders the askers. (The
provisioning line orders its workers the same way, on a lock file of its own.)
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import IO

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: threads still queue, processes poll
    fcntl = None  # type: ignore[assignment]

__all__ = ["WriterLock", "exclusive_file_lock"]


@contextmanager
def exclusive_file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` of ``path`` (created if missing) for the block."""
    with path.open("a+") as handle:
        _lock(handle)
        try:
            yield
        finally:
            _unlock(handle)


def _lock(handle: IO[str]) -> None:
    if fcntl is not None:
        fcntl.flock(handle, fcntl.LOCK_EX)


def _unlock(handle: IO[str]) -> None:
    if fcntl is not None:
        fcntl.flock(handle, fcntl.LOCK_UN)


class WriterLock:
    """Re-entrant per thread; the file lock is taken by the outermost holder only (the file is
    opened for each hold: a few microseconds against a transaction's commit)."""

    def __init__(self, database: Path | None) -> None:
        self._threads = threading.RLock()
        self._path = None if database is None else database.with_name(database.name + ".writer")
        self._depth = 0

    @contextmanager
    def hold(self) -> Iterator[None]:
        with self._threads:
            path = self._path if self._depth == 0 else None
            self._depth += 1
            try:
                with nullcontext() if path is None else exclusive_file_lock(path):
                    yield
            finally:
                self._depth -= 1
