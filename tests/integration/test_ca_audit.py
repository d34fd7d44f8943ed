"""The authority in the verifiable audit log: CA keys, issuance, revocation (with release and
escalation) and token creation are entries, appended in the transaction that made them, and
``fleetid audit verify`` checks them and notices an edited entry."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from tests.authority_server import fleetid
from tests.revocation_fixtures import issue

from fleetid.authority.fleet_ca import FleetCa
from fleetid.clock import SystemClock
from fleetid.config import Settings
from fleetid.policy import CredentialType
from fleetid.store.auditlog_table import audit_entries

_BASE = "http://audit.example"


def _entries(ca: FleetCa) -> list[tuple[str, str | None]]:
    with ca.store.engine.connect() as c:
        rows = c.execute(select(audit_entries.c.kind, audit_entries.c.serial).order_by(
            audit_entries.c.seq)).all()  # fmt: skip
    return [(r.kind, r.serial) for r in rows]


def test_ca_actions_are_verifiable_and_tampering_is_detected(tmp_path: Path) -> None:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("FLEETID_")},
           "FLEETID_PUBLIC_URL": _BASE}  # fmt: skip
    data_dir = tmp_path / "authority"
    assert fleetid("ca", "init", "--data-dir", str(data_dir), env=env).returncode == 0
    token = fleetid("token", "create", "--data-dir", str(data_dir), "--device-id", "gw-1",
                    env=env)  # fmt: skip
    assert token.returncode == 0, token.stderr
    ca = FleetCa.open(Settings.load(data_dir, environ={"FLEETID_PUBLIC_URL": _BASE}),
                      clock=SystemClock())  # fmt: skip
    try:
        held, superseded = issue(ca, 2)
        for args in (
            (f"{held.serial_number:x}", "--reason", "certificateHold"),
            (f"{held.serial_number:x}", "--release"),
            (f"{superseded.serial_number:x}", "--reason", "superseded"),
            (f"{superseded.serial_number:x}", "--reason", "keyCompromise", "--escalate"),
        ):
            done = fleetid("revoke", "--data-dir", str(data_dir), *args, env=env)
            assert done.returncode == 0, done.stderr
        h, s = f"{held.serial_number:040x}", f"{superseded.serial_number:040x}"
        assert _entries(ca) == [
            ("ca.ca-key", None),
            ("ca.ca-key", None),
            ("ca.token", None),
            ("ca.issuance", h),
            ("ca.issuance", s),
            ("ca.revocation", h),
            ("ca.release", h),
            ("ca.revocation", s),
            ("ca.escalation", s),
        ]
        # Crash consistency: a transaction that fails leaves no entry behind.
        with pytest.raises(RuntimeError), ca.store.transaction() as tx:
            ca.issue(tx, public_key=held.public_key(),  # type: ignore[arg-type]
                     credential_type=CredentialType.OPERATIONAL, common_name="x",
                     device_id=None)  # fmt: skip
            raise RuntimeError("crash before commit")
        assert len(_entries(ca)) == 9
        verified = fleetid("audit", "verify", "--data-dir", str(data_dir), env=env)
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert verified.stdout.startswith("OK fleetid-ca/") and "9 entries" in verified.stdout
        # An operator edits the revocation reason of an entry: the log no longer verifies.
        with ca.store.engine.begin() as c:
            body = c.execute(select(audit_entries.c.body).where(audit_entries.c.seq == 8)
                             ).scalar_one()  # fmt: skip
            c.execute(update(audit_entries).where(audit_entries.c.seq == 8)
                      .values(body=body.replace("keyCompromise", "superseded")))  # fmt: skip
            assert c.execute(select(func.count()).select_from(audit_entries)).scalar_one() == 9
        tampered = fleetid("audit", "verify", "--data-dir", str(data_dir), env=env)
        assert tampered.returncode != 0
        assert "BAD" in tampered.stdout, tampered.stdout + tampered.stderr
    finally:
        ca.close()


def test_an_authority_on_postgresql_is_verified_from_its_database(
    tmp_path: Path, database_url_for: Callable[[str], str]
) -> None:
    """The log lives beside the certificates: ``audit verify --database-url`` reads it there."""
    url = database_url_for("postgresql")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("FLEETID_")},
           "FLEETID_PUBLIC_URL": _BASE, "FLEETID_DATABASE_URL": url}  # fmt: skip
    data_dir = tmp_path / "authority"
    assert fleetid("ca", "init", "--data-dir", str(data_dir), env=env).returncode == 0
    token = fleetid("token", "create", "--data-dir", str(data_dir), "--device-id", "gw-1",
                    env=env)  # fmt: skip
    assert token.returncode == 0, token.stderr
    # Nothing in DATA_DIR/fleetid.db: without the URL there is no log to read.
    alone = fleetid("audit", "verify", "--data-dir", str(data_dir), env=env)
    assert alone.returncode == 1 and "no audit log database" in alone.stderr, alone.stderr
    verified = fleetid("audit", "verify", "--data-dir", str(data_dir), "--database-url", url,
                       env=env)  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.startswith("OK fleetid-ca/") and "3 entries" in verified.stdout
