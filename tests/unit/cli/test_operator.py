"""``fleetid operator create|list|revoke`` in process, on an authority with a history."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from tests.operator_fixtures import Authority, authority, run_cli, run_json

from fleetid.authority.operator_ca import certificate_path
from fleetid.crypto.pkix import issued_by

__all__ = ["authority"]  # the fixture, imported for pytest


def test_create_writes_a_client_certificate_of_the_operator_ca_and_an_owner_only_key(
    authority: Authority, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    d = str(authority.data_dir)
    made = run_json(
        capsys, "operator", "create", "alice", "--role", "operator", "--out", str(tmp_path),
        "--data-dir", d,
    )  # fmt: skip
    assert isinstance(made, dict)
    certificate = x509.load_pem_x509_certificate((tmp_path / "alice.crt").read_bytes())
    key = serialization.load_pem_private_key((tmp_path / "alice.key").read_bytes(), None)
    assert certificate.public_key() == key.public_key()
    assert stat.S_IMODE((tmp_path / "alice.key").stat().st_mode) == 0o600
    operator_ca = x509.load_pem_x509_certificate(certificate_path(authority.data_dir).read_bytes())
    assert issued_by(certificate, operator_ca)
    # Not the fleet's CAs: no device credential can pass as an operator's, nor the reverse.
    _, chain, _ = run_cli(capsys, "ca", "certs", "--data-dir", d)
    fleet = x509.load_pem_x509_certificates(chain.encode())
    assert len(fleet) == 2 and not any(issued_by(certificate, ca) for ca in fleet)
    eku = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert made["serial"] == f"{certificate.serial_number:040x}"
    # Never overwritten: a second credential of the same name into the same place is refused.
    status, _, err = run_cli(
        capsys, "operator", "create", "alice", "--role", "viewer", "--out", str(tmp_path),
        "--data-dir", d,
    )  # fmt: skip
    assert status == 1
    assert err == (
        f"fleetid: ConfigError: {tmp_path / 'alice.crt'} exists:"
        " an operator credential is never overwritten\n"
    )


def test_list_and_revoke(
    authority: Authority, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    d = str(authority.data_dir)
    made = run_json(
        capsys, "operator", "create", "bob", "--role", "viewer", "--out", str(tmp_path),
        "--data-dir", d,
    )  # fmt: skip
    serial = made["serial"]  # type: ignore[index]
    listed = run_json(capsys, "operator", "list", "--data-dir", d)
    assert [(o["name"], o["role"], o["revoked_at"]) for o in listed] == [("bob", "viewer", None)]  # type: ignore[union-attr]
    revoked = run_json(capsys, "operator", "revoke", serial, "--data-dir", d)
    assert revoked["serial"] == serial  # type: ignore[index]
    again = run_cli(capsys, "operator", "revoke", serial, "--data-dir", d)
    assert again[0] == 1
    assert again[2] == f"fleetid: PolicyError: operator credential {serial} is revoked already\n"
    status, out, _ = run_cli(capsys, "operator", "list", "--data-dir", d)
    assert status == 0 and "revoked" in out and "bob" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--days", "0"), "--days is 1 to 825"),
        (("--days", "826"), "--days is 1 to 825"),
    ],
)
def test_create_refuses_a_validity_out_of_bounds(
    authority: Authority,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    args: tuple[str, ...],
    message: str,
) -> None:
    status, _, err = run_cli(
        capsys, "operator", "create", "carol", "--role", "viewer", "--out", str(tmp_path),
        "--data-dir", str(authority.data_dir), *args,
    )  # fmt: skip
    assert status == 1
    assert err == f"fleetid: ConfigError: {message}\n"
    assert not (tmp_path / "carol.key").exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--ca-url", "https://ca.example"), "--ca-url needs --operator-cert and --operator-key"),
        (
            ("--ca-url", "https://ca.example", "--data-dir", "x"),
            "give --data-dir or --ca-url, not both",
        ),
        ((), "give --data-dir (local database) or --ca-url (admin API)"),
        (
            ("--ca-url", "http://ca.example", "--operator-cert", "c", "--operator-key", "k"),
            "--ca-url is an https:// URL (the admin API is served over TLS only)",
        ),
    ],
)
def test_ca_url_and_data_dir_are_one_or_the_other(
    capsys: pytest.CaptureFixture[str], flags: tuple[str, ...], message: str
) -> None:
    status, _, err = run_cli(capsys, "cert", "list", *flags)
    assert status == 1
    assert err == f"fleetid: ConfigError: {message}\n"


def test_revoke_prints_json_on_request(
    authority: Authority, capsys: pytest.CaptureFixture[str]
) -> None:
    d = str(authority.data_dir)
    serial = authority.enrolled.serial
    done = run_json(capsys, "revoke", serial, "--reason", "superseded", "--data-dir", d)
    assert isinstance(done, list) and len(done) == 1
    assert done[0]["serial"] == serial and done[0]["reason"] == "superseded"
    assert done[0]["sequence"] >= 2 and done[0]["revoked_at"].endswith("Z")
    status, out, _ = run_cli(capsys, "revoke", "--device", "gw-2", "--reason", "superseded",
                             "--data-dir", d)  # fmt: skip
    assert status == 0
    assert out == f"revoked {authority.other.serial} superseded seq {done[0]['sequence'] + 1}\n"
