"""``WriterLock``: SQLite writers of any process queue on a file lock beside the database."""

from __future__ import annotations

import fcntl
from pathlib import Path

import pytest

from fleetid.store.writer_lock import WriterLock


def _locked_elsewhere(path: Path) -> bool:
    """Whether another open file description (another process, in effect) holds the lock."""
    with path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def test_the_file_is_locked_while_held_and_released_after(tmp_path: Path) -> None:
    lock = WriterLock(tmp_path / "fleetid.db")
    lock_file = tmp_path / "fleetid.db.writer"
    with lock.hold():
        assert _locked_elsewhere(lock_file)
        with lock.hold():  # re-entrant on one thread
            assert _locked_elsewhere(lock_file)
        assert _locked_elsewhere(lock_file)  # the outermost holder still has it
    assert not _locked_elsewhere(lock_file)


def test_a_failure_inside_releases_the_lock(tmp_path: Path) -> None:
    lock = WriterLock(tmp_path / "fleetid.db")
    with pytest.raises(RuntimeError), lock.hold():
        raise RuntimeError("rolled back")
    assert not _locked_elsewhere(tmp_path / "fleetid.db.writer")
    with lock.hold():  # and can be taken again
        pass
