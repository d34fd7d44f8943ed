"""Every certificate profile the fleet CA issues is pkilint-clean and chains under OpenSSL.

pkilint's ``lint_pkix_cert`` (RFC 5280) and ``lint_pkix_signer_signee_cert_chain`` run as the
command-line tools an auditor would use; findings at NOTICE or above fail the test.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from tests.authority_server import require_tool

from fleetid.authority.fleet_ca import FleetCa, new_serial
from fleetid.clock import ManualClock
from fleetid.config import Settings
from fleetid.errors import ConfigError, PolicyError
from fleetid.policy import CredentialType


@pytest.fixture
def ca(tmp_path: Path) -> Iterator[FleetCa]:
    settings = Settings.load(tmp_path / "ca", environ={"FLEETID_PUBLIC_URL": "http://ca.test"})
    authority = FleetCa.init(settings, clock=ManualClock(), name="Profile Fleet")
    yield authority
    authority.close()


def _tool(name: str) -> str:
    beside = Path(sys.executable).with_name(name)
    return str(beside) if beside.exists() else (shutil.which(name) or name)


def _pem(path: Path, certificate: x509.Certificate) -> Path:
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return path


def _lint(path: Path) -> str:
    result = subprocess.run(
        [_tool("lint_pkix_cert"), "lint", "-s", "NOTICE", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout + result.stderr if result.returncode else ""


def _lint_chain(issuer: Path, subject: Path) -> str:
    result = subprocess.run(
        [_tool("lint_pkix_signer_signee_cert_chain"), "lint", str(issuer), str(subject)],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout + result.stderr if result.returncode else ""


def _issue(ca: FleetCa, credential_type: CredentialType, **kwargs: object) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    with ca.store.transaction() as tx:
        certificate, _ = ca.issue(
            tx,
            public_key=key.public_key(),
            credential_type=credential_type,
            common_name="device-42",
            device_id=None,
            **kwargs,  # type: ignore[arg-type]
        )
    return certificate


def test_every_profile_is_pkilint_clean_and_openssl_verifies(ca: FleetCa, tmp_path: Path) -> None:
    openssl = require_tool("openssl")
    issuing, root = ca.chain()
    root_pem, issuing_pem = _pem(tmp_path / "root.pem", root), _pem(tmp_path / "int.pem", issuing)
    assert _lint(root_pem) == ""
    assert _lint(issuing_pem) == ""
    assert _lint_chain(root_pem, issuing_pem) == ""
    leaves = {
        "operational": _issue(ca, CredentialType.OPERATIONAL),
        "token": _issue(ca, CredentialType.TOKEN_DEVICE),
        "tls": _issue(
            ca,
            CredentialType.TLS_SERVER,
            alt_names=(x509.DNSName("ca.test"),),
        ),
    }
    for name, leaf in leaves.items():
        path = _pem(tmp_path / f"{name}.pem", leaf)
        assert _lint(path) == "", name
        assert _lint_chain(issuing_pem, path) == "", name
        verify = subprocess.run(
            [
                openssl,
                "verify",
                "-attime",
                str(int(ca.clock.now().timestamp())),
                "-CAfile",
                root_pem,
                "-untrusted",
                issuing_pem,
                path,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert verify.returncode == 0, verify.stderr


def test_ca_profiles(ca: FleetCa) -> None:
    issuing, root = ca.chain()
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length == 1
    constraints = issuing.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value.ca
    assert constraints.value.path_length == 0
    assert root.signature_hash_algorithm is not None
    assert root.signature_hash_algorithm.name == "sha384"  # P-384 root signs with SHA-384
    issuing.verify_directly_issued_by(root)


def test_the_pkilint_gate_can_fail(ca: FleetCa, tmp_path: Path) -> None:
    # A CA certificate without keyUsage breaks RFC 5280 §4.2.1.3: the linter must say so.
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "bad CA")])
    bad = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(new_serial())
        .not_valid_before(ca.clock.now())
        .not_valid_after(ca.clock.now().replace(year=2030))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, ca.issuing.signer.hash_algorithm)  # type: ignore[arg-type]
    )
    assert _lint(_pem(tmp_path / "bad.pem", bad)) != ""


def test_serials_are_positive_and_at_most_20_octets() -> None:
    serials = [new_serial() for _ in range(2000)]
    assert all(0 < s < 1 << 159 for s in serials)
    assert len(set(serials)) == len(serials)
    assert max(serials).bit_length() > 150  # drawn from the whole range


def test_issue_refuses_a_certificate_outliving_its_issuer(ca: FleetCa) -> None:
    ca.clock.advance(ca.issuing.certificate.not_valid_after_utc - ca.clock.now())  # type: ignore[attr-defined]
    with pytest.raises(PolicyError, match="roll it over"):
        _issue(ca, CredentialType.OPERATIONAL)


def test_open_without_init_and_init_twice_are_refused(tmp_path: Path, ca: FleetCa) -> None:
    with pytest.raises(ConfigError, match="ca init"):
        FleetCa.open(Settings.load(tmp_path / "empty"), clock=ManualClock())
    with pytest.raises(ConfigError, match="already"):
        FleetCa.init(ca.settings, clock=ManualClock())


def test_tls_server_files_are_reused_until_due(ca: FleetCa) -> None:
    cert_path, key_path = ca.tls_server_files(["127.0.0.1"])
    assert oct(key_path.stat().st_mode & 0o777) == "0o600"
    first = cert_path.read_bytes()
    assert ca.tls_server_files(["127.0.0.1"])[0].read_bytes() == first
    # A new host name, or entering the renewal window, issues a fresh certificate.
    assert ca.tls_server_files(["127.0.0.1", "ca.test"])[0].read_bytes() != first
    second = cert_path.read_bytes()
    ca.clock.advance(ca.settings.policy.profile("tls-server").cadence.lifetime)  # type: ignore[attr-defined]
    assert ca.tls_server_files(["127.0.0.1", "ca.test"])[0].read_bytes() != second
