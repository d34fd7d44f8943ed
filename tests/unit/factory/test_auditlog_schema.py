"""The audit log's tables come from the store's Alembic migrations (``ensure_schema``), not from
``create_all``: a new log's database is at the head revision, and a database whose audit tables a
pre-migration release created with ``create_all`` is brought to head without losing entries."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import inspect

from fleetid.clock import ManualClock
from fleetid.crypto.signer import SoftwareSigner
from fleetid.factory.auditlog import AuditLog, AuditLogReader
from fleetid.store.auditlog_table import audit_checkpoints, audit_entries
from fleetid.store.engine import open_engine
from fleetid.store.metadata import metadata
from fleetid.store.migrate import current_revision, head_revision

ORIGIN = "fleetid.test/audit"


def _signer() -> SoftwareSigner:
    return SoftwareSigner(ec.generate_private_key(ec.SECP256R1()))


def test_new_log_database_is_at_the_head_revision(tmp_path: Path) -> None:
    engine = open_engine(tmp_path)
    assert current_revision(engine) is None
    AuditLog.open(tmp_path, _signer(), ORIGIN, ManualClock()).append("ceremony", None, {})
    assert current_revision(engine) == head_revision()
    tables = set(inspect(engine).get_table_names())
    # The whole store schema, not only the log's two tables.
    assert {"audit_log_entries", "audit_log_checkpoints", "certificates", "line_manifest"} <= tables
    engine.dispose()


def test_tables_made_by_create_all_are_migrated_with_their_entries(tmp_path: Path) -> None:
    engine = open_engine(tmp_path)
    # What a log made before the migrations left behind: its two tables and nothing else.
    metadata.create_all(engine, tables=[audit_entries, audit_checkpoints])
    signer, clock = _signer(), ManualClock()
    log = AuditLog.open(tmp_path, signer, ORIGIN, clock)
    log.append("ceremony", None, {"m": 3})
    log.append("lock", "SN-1", {})
    assert current_revision(engine) == head_revision()
    reopened = AuditLog.open(tmp_path, signer, ORIGIN, clock)
    reopened.append("lock", "SN-2", {})
    report = AuditLogReader(engine, ORIGIN).verify_all(signer.public_key())
    assert (report.entries, report.checkpoints, report.tree_size) == (3, 3, 3)
    engine.dispose()
