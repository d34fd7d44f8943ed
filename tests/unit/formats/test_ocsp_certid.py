"""The CertID issuer hashes against pyca's own OCSP request encoder (an independent CertID)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from fleetid.errors import VerificationError
from fleetid.formats.ocsp_certid import issuer_hashes

_NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _certificate(
    name: str, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, issuer: str | None = None
) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer or name)]))
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(_NOW)
        .not_valid_after(_NOW + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )


# SHA-1 is RFC 6960's default CertID hash (and what OpenSSL sends); SHA-256 per RFC 9919.
@pytest.mark.parametrize("algorithm", [hashes.SHA1(), hashes.SHA256()])  # noqa: S303
@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1()])
def test_matches_the_cert_id_pyca_encodes(
    algorithm: hashes.HashAlgorithm, curve: ec.EllipticCurve
) -> None:
    issuer = _certificate("issuing CA", ec.generate_private_key(curve))
    # The leaf's issuer Name is what pyca hashes; its signature does not matter to the CertID.
    leaf = _certificate("leaf", ec.generate_private_key(ec.SECP256R1()), issuer="issuing CA")
    request = ocsp.OCSPRequestBuilder().add_certificate(leaf, issuer, algorithm).build()
    assert issuer_hashes(issuer, algorithm) == (
        request.issuer_name_hash,
        request.issuer_key_hash,
    )


def test_another_issuer_has_other_hashes() -> None:
    a = _certificate("issuing CA", ec.generate_private_key(ec.SECP256R1()))
    same_name_other_key = _certificate("issuing CA", ec.generate_private_key(ec.SECP256R1()))
    other_name_same_key_type = _certificate("other CA", ec.generate_private_key(ec.SECP256R1()))
    name_a, key_a = issuer_hashes(a, hashes.SHA256())
    name_b, key_b = issuer_hashes(same_name_other_key, hashes.SHA256())
    assert name_a == name_b
    assert key_a != key_b
    assert issuer_hashes(other_name_same_key_type, hashes.SHA256())[0] != name_a


def test_non_ec_issuer_is_refused() -> None:
    issuer = _certificate("RSA CA", rsa.generate_private_key(public_exponent=65537, key_size=2048))
    with pytest.raises(VerificationError, match="EC keys"):
        issuer_hashes(issuer, hashes.SHA256())
