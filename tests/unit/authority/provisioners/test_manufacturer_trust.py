"""``ManufacturerTrust``: the trusted manufacturer roots follow the directory as it changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fleetid.authority.provisioners.attestation import (
    MANUFACTURERS_DIR,
    AttestationProvisioner,
    ManufacturerTrust,
    distrust_manufacturer,
    trust_manufacturer,
)
from fleetid.clock import ManualClock
from fleetid.errors import ConfigError, NotFoundError


def _root(name: str) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .sign(key, hashes.SHA256())
    )


def test_roots_are_followed_as_they_are_trusted_and_distrusted(tmp_path: Path) -> None:
    trust = ManufacturerTrust(tmp_path)
    provisioner = AttestationProvisioner(ManualClock(), trust.policy)
    assert trust.policy() is None and not provisioner.configured
    with pytest.raises(ConfigError, match="no manufacturer root is trusted"):
        _ = provisioner.policy

    first, second = _root("Maker A"), _root("Maker B")
    trust_manufacturer(tmp_path, first)
    assert provisioner.configured and provisioner.policy.manufacturer_roots == (first,)
    trust_manufacturer(tmp_path, second)
    assert set(provisioner.policy.manufacturer_roots) == {first, second}

    removed = distrust_manufacturer(tmp_path, first.fingerprint(hashes.SHA256()).hex()[:20])
    assert removed == [first] and provisioner.policy.manufacturer_roots == (second,)
    distrust_manufacturer(tmp_path, second.fingerprint(hashes.SHA256()).hex().upper())
    assert not provisioner.configured
    assert not any((tmp_path / MANUFACTURERS_DIR).iterdir())  # no temporary files left


def test_distrust_refuses_a_short_or_unknown_fingerprint(tmp_path: Path) -> None:
    trust_manufacturer(tmp_path, _root("Maker A"))
    with pytest.raises(ConfigError, match="16 hex digits"):
        distrust_manufacturer(tmp_path, "abcd")
    with pytest.raises(NotFoundError):
        distrust_manufacturer(tmp_path, "0" * 64)


def test_a_file_that_is_not_pem_is_named(tmp_path: Path) -> None:
    trust = ManufacturerTrust(tmp_path)
    trust_manufacturer(tmp_path, _root("Maker A"))
    assert trust.policy() is not None
    (tmp_path / MANUFACTURERS_DIR / "broken.pem").write_text("not a certificate")
    with pytest.raises(ConfigError, match=r"broken\.pem is not a PEM certificate"):
        trust.policy()
