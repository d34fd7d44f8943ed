"""``fleetid doctor``: each check passes on a healthy authority and fails, named, when its part
is broken."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.operator_fixtures import Authority, authority, run_cli

from fleetid.authority.fleet_ca import FleetCa
from fleetid.clock import SystemClock
from fleetid.config import Settings
from fleetid.revocation.crl import publisher_for

__all__ = ["authority"]


def _publish_crls(data_dir: Path) -> None:
    ca = FleetCa.open(Settings.load(data_dir), clock=SystemClock())
    try:
        publisher_for(ca).publish(force=True)
    finally:
        ca.close()


def _doctor(
    capsys: pytest.CaptureFixture[str], data_dir: Path, *extra: str
) -> tuple[int, dict[str, str], str]:
    status, out, err = run_cli(capsys, "doctor", "--data-dir", str(data_dir), *extra)
    checks = {}
    for line in out.splitlines()[:-1] if status == 0 else out.splitlines():
        state, name, *_ = line.split()
        checks[name] = state
    return status, checks, err


def test_a_healthy_authority_passes(
    authority: Authority, capsys: pytest.CaptureFixture[str]
) -> None:
    _publish_crls(authority.data_dir)
    status, checks, err = _doctor(capsys, authority.data_dir, "--within", "1d")
    assert status == 0, checks
    assert set(checks.values()) == {"ok"}
    assert set(checks) == {
        "config",
        "database",
        "hsm",
        "public-url",
        "clock",
        "ca-expiry",
        "certificates",
        "revocation",
    }
    assert err == ""


def test_unpublished_crls_and_expiring_certificates_are_named(
    authority: Authority, capsys: pytest.CaptureFixture[str]
) -> None:
    status, checks, err = _doctor(capsys, authority.data_dir)
    assert status == 1
    assert checks["revocation"] == "FAIL"
    assert checks["certificates"] == "warn"  # gw-2's expires in 2 days, inside the 7d default
    assert err == "fleetid: doctor: failing checks: revocation\n"


def test_a_loopback_public_url_fails(
    authority: Authority, capsys: pytest.CaptureFixture[str]
) -> None:
    _publish_crls(authority.data_dir)
    (authority.data_dir / "fleetid.toml").write_text('public_url = "http://127.0.0.1:8080"\n')
    status, checks, err = _doctor(capsys, authority.data_dir, "--within", "1d")
    assert (status, checks["public-url"]) == (1, "FAIL")
    assert err == "fleetid: doctor: failing checks: public-url\n"


def test_a_wrong_activation_key_fails(
    authority: Authority, capsys: pytest.CaptureFixture[str]
) -> None:
    _publish_crls(authority.data_dir)
    (authority.data_dir / "ca" / "activation.key").write_text("00" * 32)
    status, checks, _ = _doctor(capsys, authority.data_dir, "--within", "1d")
    assert (status, checks["hsm"]) == (1, "FAIL")


def test_a_key_missing_from_the_hsm_is_named(
    authority: Authority, capsys: pytest.CaptureFixture[str]
) -> None:
    _publish_crls(authority.data_dir)
    store = authority.data_dir / "ca" / "hsm" / "keystore.json"
    document = json.loads(store.read_text())
    del document["keys"]["fleet-issuing-1"]
    store.write_text(json.dumps(document))
    status, out, _ = run_cli(
        capsys, "doctor", "--data-dir", str(authority.data_dir), "--within", "1d"
    )
    assert status == 1
    assert "FAIL  hsm           keys missing: fleet-issuing-1" in out


def test_a_ca_near_expiry_fails(authority: Authority, capsys: pytest.CaptureFixture[str]) -> None:
    _publish_crls(authority.data_dir)
    status, checks, err = _doctor(
        capsys, authority.data_dir, "--within", "1d", "--ca-within", "20000d"
    )
    assert (status, checks["ca-expiry"]) == (1, "FAIL")
    assert "ca-expiry" in err


def test_an_unmigrated_database_fails_and_is_not_migrated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "empty"
    data_dir.mkdir()
    status, checks, _ = _doctor(capsys, data_dir)
    assert status == 1
    assert checks["database"] == "FAIL" and checks["hsm"] == "FAIL"
    from fleetid.store.engine import open_engine
    from fleetid.store.migrate import current_revision

    assert current_revision(open_engine(data_dir)) is None  # doctor never migrates


def test_a_corrupt_config_file_fails_first(
    authority: Authority, capsys: pytest.CaptureFixture[str]
) -> None:
    (authority.data_dir / "fleetid.toml").write_text("public_url = [\n")
    status, out, err = run_cli(capsys, "doctor", "--data-dir", str(authority.data_dir))
    assert status == 1
    assert out.startswith("FAIL  config") and "is not valid TOML" in out
    assert err == "fleetid: doctor: failing checks: config\n"
