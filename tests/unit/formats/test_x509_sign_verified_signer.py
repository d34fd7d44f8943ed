"""certsign with a signer that verifies before returning (an HSM signer): its signature is not
checked a second time, yet a bad HSM signature still never reaches a certificate, and any other
signer is still verified by certsign itself."""

from __future__ import annotations

import datetime
import os

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.x509.oid import NameOID

from fleetid.crypto.signer import SoftwareSigner, verify_signature
from fleetid.errors import HsmError, VerificationError
from fleetid.formats.x509_sign import sign_certificate, sign_crl
from fleetid.hsm.software import SoftwareHsm

NOW = datetime.datetime(2027, 1, 1, tzinfo=datetime.UTC)
NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "certsign test")])


def _builder(public: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(NAME)
        .issuer_name(NAME)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW)
        .not_valid_after(NOW + datetime.timedelta(days=1))
    )


@pytest.fixture
def hsm() -> SoftwareHsm:
    hsm = SoftwareHsm.initialise(None, os.urandom(32))
    hsm.generate_ec_key("ca", "P-256")
    return hsm


def test_an_hsm_signer_says_it_verifies(hsm: SoftwareHsm) -> None:
    assert getattr(hsm.signer("ca"), "verifies_signatures", None) is True
    assert not hasattr(
        SoftwareSigner(ec.generate_private_key(ec.SECP256R1())), "verifies_signatures"
    )


def test_hsm_signed_certificate_and_crl_verify(hsm: SoftwareHsm) -> None:
    signer = hsm.signer("ca")
    certificate = sign_certificate(_builder(signer.public_key()), signer)
    verify_signature(
        signer.public_key(),
        certificate.signature,
        certificate.tbs_certificate_bytes,
        hashes.SHA256(),
    )
    crl = sign_crl(
        x509.CertificateRevocationListBuilder()
        .issuer_name(NAME)
        .last_update(NOW)
        .next_update(NOW + datetime.timedelta(days=1)),
        signer,
    )
    assert crl.is_signature_valid(signer.public_key())


def test_a_bad_hsm_signature_never_reaches_a_certificate(
    hsm: SoftwareHsm, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The HSM returns a signature by another key (a faulty token): the HSM layer refuses it."""
    stranger = ec.generate_private_key(ec.SECP256R1())
    monkeypatch.setattr(
        hsm,
        "_sign_digest",
        lambda label, digest: stranger.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256()))),
    )
    signer = hsm.signer("ca")
    with pytest.raises(HsmError, match="does not verify"):
        sign_certificate(_builder(signer.public_key()), signer)


class _ClaimingSigner:
    """Signs with another key than it names; claims to verify with a value that is not True."""

    verifies_signatures = 1

    def __init__(self) -> None:
        self._claimed = ec.generate_private_key(ec.SECP256R1()).public_key()
        self._actual = SoftwareSigner(ec.generate_private_key(ec.SECP256R1()))

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._claimed

    @property
    def hash_algorithm(self) -> hashes.HashAlgorithm:
        return hashes.SHA256()

    def sign(self, data: bytes) -> bytes:
        return self._actual.sign(data)


def test_only_an_explicit_true_skips_the_check() -> None:
    signer = _ClaimingSigner()
    with pytest.raises(VerificationError):
        sign_certificate(_builder(signer.public_key()), signer)
