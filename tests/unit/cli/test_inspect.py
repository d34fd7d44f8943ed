"""``fleetid cert list|show`` and ``fleetid device list|show`` through ``fleetid.cli.main``, on an
authority with a real history (tests/operator_fixtures.py)."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography import x509
from tests.operator_fixtures import Authority, authority, run_cli, run_json

from fleetid.crypto.pkix import issued_by

__all__ = ["authority"]  # the fixture, imported for pytest


def _serials(document: Any) -> set[str]:
    return {row["serial"] for row in document}


def test_cert_list_gives_every_certificate_newest_first(
    authority: Authority, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = run_json(capsys, "cert", "list", "--data-dir", str(authority.data_dir))
    assert [r["serial"] for r in rows] == [  # type: ignore[union-attr]
        authority.rekeyed.serial,
        authority.refreshed.serial,
        authority.enrolled.serial,
        authority.other.serial,
    ]


def test_cert_list_filters_by_device_and_status(
    authority: Authority, capsys: pytest.CaptureFixture[str]
) -> None:
    d = str(authority.data_dir)
    revoked = run_json(capsys, "cert", "list", "--data-dir", d, "--status", "revoked")
    assert _serials(revoked) == {authority.rekeyed.serial}
    assert revoked[0]["revocation_reason"] == "keyCompromise"  # type: ignore[index]
    valid = run_json(
        capsys, "cert", "list", "--data-dir", d, "--status", "valid", "--device", "gw-1"
    )
    assert _serials(valid) == {authority.enrolled.serial, authority.refreshed.serial}
    assert run_json(capsys, "cert", "list", "--data-dir", d, "--device", "gw-9") == []


def test_cert_list_expiring_within_leaves_out_the_revoked_and_the_later(
    authority: Authority, capsys: pytest.CaptureFixture[str]
) -> None:
    d = str(authority.data_dir)
    soon = run_json(capsys, "cert", "list", "--data-dir", d, "--expiring-within", "3d")
    assert _serials(soon) == {authority.other.serial}
    later = run_json(capsys, "cert", "list", "--data-dir", d, "--expiring-within", "27d12h")
    assert _serials(later) == {authority.other.serial, authority.enrolled.serial}


def test_cert_list_text_is_one_line_a_certificate(
    authority: Authority, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run_cli(capsys, "cert", "list", "--data-dir", str(authority.data_dir))
    assert status == 0
    lines = out.splitlines()
    assert len(lines) == 4
    assert lines[0].startswith(f"{authority.rekeyed.serial}  revoked (keyCompromise)")


def test_cert_show_gives_chain_status_device_and_audit(
    authority: Authority, capsys: pytest.CaptureFixture[str]
) -> None:
    serial = authority.rekeyed.serial.lstrip("0").upper()  # either case, no padding
    shown = run_json(capsys, "cert", "show", serial, "--data-dir", str(authority.data_dir))
    assert isinstance(shown, dict)
    assert shown["serial"] == authority.rekeyed.serial
    assert shown["status"] == "revoked"
    assert shown["revocation_reason"] == "keyCompromise"
    assert shown["revoked_at"] is not None
    assert shown["device"] == {"device_id": "gw-1", "status": "enrolled"}
    assert [link["subject"].split(",")[0] for link in shown["chain"]] == [
        "CN=Operator Fleet Fleet Issuing CA G1",
        "CN=Operator Fleet Fleet Root G1",
    ]
    assert [e["kind"] for e in shown["audit"]] == ["ca.issuance", "ca.revocation"]


def test_cert_show_pem_is_a_chain_that_verifies(
    authority: Authority, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run_cli(
        capsys,
        "cert",
        "show",
        authority.enrolled.serial,
        "--data-dir",
        str(authority.data_dir),
        "--pem",
    )
    assert status == 0
    leaf, issuing, root = x509.load_pem_x509_certificates(out.encode())
    assert issued_by(leaf, issuing) and issued_by(issuing, root) and issued_by(root, root)
    assert f"{leaf.serial_number:040x}" == authority.enrolled.serial


def test_cert_show_an_unknown_serial_is_one_line(
    authority: Authority, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run_cli(
        capsys, "cert", "show", "abcdef", "--data-dir", str(authority.data_dir)
    )
    assert status == 1 and out == ""
    assert err == "fleetid: NotFoundError: this authority issued no certificate abcdef\n"


def test_cert_show_a_serial_that_is_not_hex_is_refused(
    authority: Authority, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run_cli(capsys, "cert", "show", "xyz", "--data-dir", str(authority.data_dir))
    assert status == 1
    assert err.startswith("fleetid: NotFoundError: 'xyz' is not a hexadecimal serial")


def test_cert_list_a_bad_status_is_a_one_line_usage_error(
    authority: Authority, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run_cli(
        capsys, "cert", "list", "--data-dir", str(authority.data_dir), "--status", "lost"
    )
    assert status == 2
    assert len(err.splitlines()) == 1
    assert err.startswith("fleetid: cert list: argument --status: invalid choice: 'lost'")


@pytest.mark.parametrize("span", ["soon", "0", "-3d", "3w"])
def test_cert_list_a_bad_span_is_refused(
    authority: Authority, capsys: pytest.CaptureFixture[str], span: str
) -> None:
    status, _, err = run_cli(
        capsys, "cert", "list", "--data-dir", str(authority.data_dir), f"--expiring-within={span}"
    )
    assert status == 2
    assert "is not a duration" in err


def test_cert_list_on_a_missing_data_dir_is_refused(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run_cli(capsys, "cert", "list", "--data-dir", str(tmp_path / "absent"))
    assert status == 1
    assert err == f"fleetid: ConfigError: data directory {tmp_path / 'absent'} does not exist\n"


def test_device_list_counts_certificates(
    authority: Authority, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = run_json(capsys, "device", "list", "--data-dir", str(authority.data_dir))
    assert {(r["device_id"], r["certificates"]) for r in rows} == {("gw-1", 3), ("gw-2", 1)}  # type: ignore[union-attr]
    pending = run_json(
        capsys, "device", "list", "--data-dir", str(authority.data_dir), "--status", "pending"
    )
    assert pending == []


def test_device_show_draws_the_lifecycle_timeline(
    authority: Authority, capsys: pytest.CaptureFixture[str]
) -> None:
    shown = run_json(capsys, "device", "show", "gw-1", "--data-dir", str(authority.data_dir))
    assert isinstance(shown, dict)
    events = [(e["event"], e["detail"].split()[0]) for e in shown["timeline"]]
    assert events == [
        ("enrolled", authority.enrolled.serial),
        ("refresh", authority.refreshed.serial),
        ("re-key", authority.rekeyed.serial),
        ("revoked", authority.rekeyed.serial),
    ]
    kinds = [e["kind"] for e in shown["audit"]]
    assert kinds == ["ca.issuance", "ca.issuance", "ca.issuance", "ca.revocation"]


def test_device_show_an_unknown_device_is_one_line(
    authority: Authority, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run_cli(
        capsys, "device", "show", "gw-9", "--data-dir", str(authority.data_dir)
    )
    assert status == 1
    assert err == "fleetid: NotFoundError: this authority knows no device 'gw-9'\n"
