"""TbsTemplate, the one mechanism of the issuers that write TBS certificates from once-encoded
parts: the template is checked against pyca before it issues, its signature algorithm is its
signer's, and values it does not take go to pyca's builder."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fleetid.crypto.pkix import issued_by
from fleetid.crypto.signer import SoftwareSigner
from fleetid.errors import EncodingError, VerificationError
from fleetid.formats import x509_tbs
from fleetid.formats.x509_sign import draft_tbs, probe_public_key
from fleetid.formats.x509_template import TbsParts, TbsTemplate

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
_CN = x509_tbs.oid(NameOID.COMMON_NAME)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


class _Template(TbsTemplate[tuple[ec.EllipticCurvePublicKey, str, int]]):
    """A certificate with a commonName and one basicConstraints extension, under ``issuer``."""

    what = "test"

    def __init__(self, issuer: x509.Certificate, signer: SoftwareSigner, *, lie: bool = False):
        self.issuer = issuer
        self.lie = lie
        super().__init__(signer)

    def builder(
        self, values: tuple[ec.EllipticCurvePublicKey, str, int]
    ) -> x509.CertificateBuilder:
        key, name, serial = values
        return (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(self.issuer.subject)
            .public_key(key)
            .serial_number(serial)
            .not_valid_before(NOW)
            .not_valid_after(NOW + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )

    def probe(self) -> tuple[ec.EllipticCurvePublicKey, str, int]:
        return probe_public_key(), "probe", 1

    def check(self) -> tuple[ec.EllipticCurvePublicKey, str, int]:
        return probe_public_key(), "check", 0x7F3A

    def takes(self, values: tuple[ec.EllipticCurvePublicKey, str, int]) -> bool:
        return values[1].isascii()

    def tbs(self, values: tuple[ec.EllipticCurvePublicKey, str, int]) -> bytes:
        key, name, serial = values
        spki = key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        tag = 0x13 if self.lie else 0x0C  # PrintableString where pyca writes UTF8String
        return self.parts.tbs(
            serial=serial,
            validity=x509_tbs.time(NOW) + self.parts.not_after,
            subject=x509_tbs.rdn(_CN, tag, name.encode()),
            spki=spki,
            extensions=self.parts.extensions[0],
        )


def _ca(curve: ec.EllipticCurve | None = None) -> tuple[SoftwareSigner, x509.Certificate]:
    key = ec.generate_private_key(curve or ec.SECP256R1())
    signer = SoftwareSigner(key)
    return signer, (
        x509.CertificateBuilder()
        .subject_name(_name("Test CA"))
        .issuer_name(_name("Test CA"))
        .public_key(signer.public_key())
        .serial_number(5)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, signer.hash_algorithm)
    )


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1()], ids=["P-256", "P-384"])
def test_the_template_writes_pyca_s_tbs_and_its_certificates_verify(
    curve: ec.EllipticCurve,
) -> None:
    signer, issuer = _ca(curve)
    template = _Template(issuer, signer)
    values = (probe_public_key(), "device-7", 1234)
    assert template.tbs(values) == draft_tbs(template.builder(values), signer)
    made = template.certificate(values)
    assert made.tbs_certificate_bytes == template.tbs(values)
    assert made.signature_hash_algorithm is not None
    assert made.signature_hash_algorithm.name == signer.hash_algorithm.name
    assert issued_by(made, issuer)
    assert not issued_by(made, _ca(curve)[1])


def test_a_template_that_does_not_rebuild_pyca_is_refused() -> None:
    signer, issuer = _ca()
    with pytest.raises(EncodingError, match="test template"):
        _Template(issuer, signer, lie=True)


def test_values_the_template_does_not_take_go_to_the_builder() -> None:
    signer, issuer = _ca()
    template = _Template(issuer, signer)
    made = template.certificate((probe_public_key(), "Müller", 9))
    assert made.subject == _name("Müller") and made.serial_number == 9


def test_a_signature_that_does_not_verify_is_refused() -> None:
    class _Bad(SoftwareSigner):
        def sign(self, data: bytes) -> bytes:
            return super().sign(data + b"x")

    _, issuer = _ca()
    signer = _Bad(ec.generate_private_key(ec.SECP256R1()))
    template = _Template(issuer, signer)
    with pytest.raises(VerificationError):
        template.certificate((probe_public_key(), "device", 3))


def test_parts_refuse_a_tbs_without_extensions() -> None:
    signer, _ = _ca()
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name("x"))
        .issuer_name(_name("x"))
        .public_key(signer.public_key())
        .serial_number(1)
        .not_valid_before(NOW)
        .not_valid_after(NOW + timedelta(days=1))
    )
    with pytest.raises(EncodingError, match="extensions"):
        TbsParts.of(draft_tbs(builder, signer))
