"""Two writers on one log (two line processes): a writer whose cached tree is behind takes the
other's new leaves incrementally, and still refuses a log whose new leaves were tampered with."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Executable, delete, update

from fleetid.clock import ManualClock
from fleetid.crypto.signer import SoftwareSigner
from fleetid.errors import LogTamperedError
from fleetid.factory.auditlog import AuditEvent, AuditLog
from fleetid.store.auditlog_table import audit_entries

ORIGIN = "fleetid.example/writers"
SIGNER = SoftwareSigner(ec.generate_private_key(ec.SECP256R1()))


@pytest.fixture
def pair(tmp_path: Path) -> tuple[AuditLog, AuditLog]:
    clock = ManualClock()
    first = AuditLog.open(tmp_path, SIGNER, ORIGIN, clock)
    second = AuditLog.open(tmp_path, SIGNER, ORIGIN, clock)
    return first, second


def _events(prefix: str, n: int) -> list[AuditEvent]:
    return [AuditEvent(kind="injection", serial=f"{prefix}-{i}", body={"i": i}) for i in range(n)]


def test_interleaved_writers_build_one_consistent_log(pair: tuple[AuditLog, AuditLog]) -> None:
    first, second = pair
    for round_ in range(6):
        first.append_many(_events(f"A{round_}", 3))
        second.append_many(_events(f"B{round_}", 5))
    report = first.verify_all(SIGNER.public_key())
    assert report.entries == report.tree_size == 6 * 8
    assert report.checkpoints == 12
    assert second.verify_all(SIGNER.public_key()).root_hash == report.root_hash
    serials = [e.serial for e in first.entries()]
    assert serials[:8] == [f"A0-{i}" for i in range(3)] + [f"B0-{i}" for i in range(5)]


@pytest.mark.parametrize(
    ("tamper", "error", "match"),
    [
        pytest.param(
            update(audit_entries).where(audit_entries.c.seq == 3).values(leaf_hash=b"\x00" * 32),
            LogTamperedError,
            "latest signed checkpoint",
            id="altered",
        ),
        pytest.param(
            delete(audit_entries).where(audit_entries.c.seq == 3),
            LogTamperedError,
            "gaps",
            id="deleted",
        ),
        pytest.param(  # a malformed leaf hash is refused, not crashed on
            update(audit_entries).where(audit_entries.c.seq == 4).values(leaf_hash=b"\x01" * 31),
            (LogTamperedError, ValueError),
            None,
            id="malformed",
        ),
    ],
)
def test_a_tampered_new_entry_is_refused_by_the_writer_behind(
    pair: tuple[AuditLog, AuditLog],
    tamper: Executable,
    error: type[Exception] | tuple[type[Exception], ...],
    match: str | None,
) -> None:
    first, second = pair
    first.append_many(_events("A", 2))
    second.append_many(_events("B", 3))
    with first._engine.begin() as conn:
        conn.execute(tamper)
    with pytest.raises(error, match=match):
        first.append_many(_events("A2", 1))


def test_the_writer_behind_extends_its_tree_instead_of_rebuilding(
    pair: tuple[AuditLog, AuditLog],
) -> None:
    first, second = pair
    first.append_many(_events("A", 2))
    cached = first._tree
    second.append_many(_events("B", 3))
    first.append_many(_events("A2", 1))
    assert first._tree is cached and cached is not None and cached.size == 6
