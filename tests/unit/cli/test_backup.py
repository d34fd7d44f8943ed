"""``fleetid backup`` / ``fleetid restore``: a restored copy holds the same certificates and an
audit log that ``fleetid audit verify`` accepts; a restore never overwrites and refuses a backup
that was altered."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from tests.authority_server import fleetid
from tests.db_fixtures import postgres_server_url
from tests.operator_fixtures import Authority, authority, run_cli, run_json
from tests.optional import require_tool, unavailable

from fleetid.store.engine import open_engine

__all__ = ["authority"]


def _backup(capsys: pytest.CaptureFixture[str], data_dir: Path, to: Path) -> None:
    status, out, err = run_cli(capsys, "backup", "--data-dir", str(data_dir), "--to", str(to))
    assert status == 0, err
    assert out.startswith("backed up ")


def test_a_restored_copy_verifies_and_lists_the_same_certificates(
    authority: Authority, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _backup(capsys, authority.data_dir, tmp_path / "b")
    assert (tmp_path / "b").stat().st_mode & 0o777 == 0o700
    restored = tmp_path / "restored"
    status, out, err = run_cli(
        capsys, "restore", "--from", str(tmp_path / "b"), "--data-dir", str(restored)
    )
    assert status == 0, err
    assert "audit log OK" in out
    assert (restored / "ca" / "activation.key").stat().st_mode & 0o777 == 0o600
    status, out, _ = run_cli(capsys, "audit", "verify", "--data-dir", str(restored))
    assert status == 0 and out.startswith("OK ")
    before = run_json(capsys, "cert", "list", "--data-dir", str(authority.data_dir))
    after = run_json(capsys, "cert", "list", "--data-dir", str(restored))
    assert after == before and len(after) == 4  # type: ignore[arg-type]
    # The restored authority works: the doctor finds its HSM keys.
    status, out, _ = run_cli(capsys, "doctor", "--data-dir", str(restored))
    assert "ok    hsm" in out


def test_restore_onto_a_non_empty_target_overwrites_nothing(
    authority: Authority, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _backup(capsys, authority.data_dir, tmp_path / "b")
    target = tmp_path / "busy"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    status, _, err = run_cli(
        capsys, "restore", "--from", str(tmp_path / "b"), "--data-dir", str(target)
    )
    assert status == 1
    assert (
        err
        == f"fleetid: ConfigError: data directory {target} is not empty: nothing is overwritten\n"
    )
    assert [p.name for p in target.iterdir()] == ["keep.txt"]


def test_backup_into_a_non_empty_directory_is_refused(
    authority: Authority, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x").write_text("x")
    status, _, err = run_cli(
        capsys, "backup", "--data-dir", str(authority.data_dir), "--to", str(tmp_path / "b")
    )
    assert status == 1 and "is not empty" in err


def test_an_altered_backup_file_is_refused(
    authority: Authority, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _backup(capsys, authority.data_dir, tmp_path / "b")
    with (tmp_path / "b" / "data" / "audit-log.vkey").open("a") as file:
        file.write("x")
    status, _, err = run_cli(
        capsys, "restore", "--from", str(tmp_path / "b"), "--data-dir", str(tmp_path / "r")
    )
    assert status == 1 and "does not match its SHA-256" in err
    assert not (tmp_path / "r").exists()


def _restore_edited(
    capsys: pytest.CaptureFixture[str], authority: Authority, tmp: Path, key: str, value: object
) -> tuple[int, str]:
    """Back up, change one member of backup.json (a dict value is merged), restore."""
    _backup(capsys, authority.data_dir, tmp / "b")
    manifest = json.loads((tmp / "b" / "backup.json").read_text())
    manifest[key] = {**manifest[key], **value} if isinstance(value, dict) else value
    (tmp / "b" / "backup.json").write_text(json.dumps(manifest))
    status, _, err = run_cli(
        capsys, "restore", "--from", str(tmp / "b"), "--data-dir", str(tmp / "r")
    )
    return status, err


def test_an_altered_database_is_refused(
    authority: Authority, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, err = _restore_edited(capsys, authority, tmp_path, "database_sha256", "00" * 32)
    assert status == 1 and "fleetid.db does not match" in err


def test_a_manifest_naming_a_file_outside_the_backup_is_refused(
    authority: Authority, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = {"../../etc/passwd": "00" * 32}
    status, err = _restore_edited(capsys, authority, tmp_path, "files", files)
    assert status == 1 and "outside the backup" in err


def test_a_tampered_audit_log_fails_the_restore(
    authority: Authority, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The restore verifies the log: an entry changed in the source is caught in the copy."""
    engine = open_engine(authority.data_dir)
    with engine.begin() as connection:
        connection.execute(text("UPDATE audit_log_entries SET body = '{}' WHERE seq = 1"))
    engine.dispose()
    _backup(capsys, authority.data_dir, tmp_path / "b")
    status, out, _ = run_cli(
        capsys, "restore", "--from", str(tmp_path / "b"), "--data-dir", str(tmp_path / "r")
    )
    assert status == 1 and out.startswith("BAD restored audit log")


def test_a_directory_that_is_not_a_backup_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run_cli(
        capsys, "restore", "--from", str(tmp_path), "--data-dir", str(tmp_path / "r")
    )
    assert (status, err) == (
        1,
        f"fleetid: ConfigError: {tmp_path} is not a fleetid backup (no backup.json)\n",
    )


def test_postgresql_backup_is_pg_dump_and_restores_into_another_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    require_tool("pg_dump")
    require_tool("pg_restore")
    admin = create_engine(postgres_server_url(), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        admin.dispose()
        unavailable(f"PostgreSQL not reachable at {postgres_server_url()}: {exc}")
    source, target = (f"fleetid_b_{secrets.token_hex(4)}" for _ in range(2))
    with admin.connect() as connection:
        for name in (source, target):
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    server = postgres_server_url().rsplit("/", 1)[0]
    try:
        monkeypatch.setenv("FLEETID_DATABASE_URL", f"{server}/{source}")
        data_dir = tmp_path / "authority"
        status, _, err = run_cli(capsys, "ca", "init", "--data-dir", str(data_dir))
        assert status == 0, err
        status, _, err = run_cli(
            capsys, "token", "create", "--data-dir", str(data_dir), "--device-id", "pg-1"
        )
        assert status == 0, err
        _backup(capsys, data_dir, tmp_path / "b")
        assert (tmp_path / "b" / "fleetid.pgdump").read_bytes().startswith(b"PGDMP")
        monkeypatch.delenv("FLEETID_DATABASE_URL")
        url = f"{server}/{target}"
        status, out, err = run_cli(
            capsys,
            "restore",
            "--from",
            str(tmp_path / "b"),
            "--data-dir",
            str(tmp_path / "r"),
            "--database-url",
            url,
        )
        assert status == 0, err
        assert "audit log OK" in out
        verified = fleetid(
            "audit", "verify", "--data-dir", str(tmp_path / "r"), "--database-url", url
        )
        assert verified.returncode == 0 and verified.stdout.startswith("OK "), verified.stderr
        # A second restore into the now non-empty database is refused.
        status, _, err = run_cli(
            capsys,
            "restore",
            "--from",
            str(tmp_path / "b"),
            "--data-dir",
            str(tmp_path / "r2"),
            "--database-url",
            url,
        )
        assert status == 1 and "is not empty" in err
    finally:
        with admin.connect() as connection:
            for name in (source, target):
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        os.environ.pop("FLEETID_DATABASE_URL", None)
