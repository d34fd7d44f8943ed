"""certsign rebuilds the signed certificate / CRL around the draft's TBS and algorithm bytes; the
result is byte for byte what asn1crypto encodes for the same three fields (the earlier path)."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fleetid.crypto.signer import SoftwareSigner
from fleetid.errors import EncodingError
from fleetid.formats.x509_sign import sign_certificate, sign_crl

NOW = datetime.datetime(2027, 1, 1, tzinfo=datetime.UTC)


def _reencoded(asn1_type: Any, der: bytes, tbs_field: str, sig_field: str) -> bytes:
    """What asn1crypto encodes for the three fields of ``der`` (the earlier certsign path)."""
    parsed = asn1_type.load(der)
    return bytes(
        asn1_type(
            {
                tbs_field: parsed[tbs_field],
                "signature_algorithm": parsed["signature_algorithm"],
                sig_field: parsed[sig_field].native,
            }
        ).dump(force=True)
    )


def _name(length: int) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "n" * length)])


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1()])
@pytest.mark.parametrize("name_length", [1, 60, 64])  # short, 1- and 2-byte outer lengths
def test_certificate_bytes_equal_the_asn1crypto_encoding(
    curve: ec.EllipticCurve, name_length: int
) -> None:
    key = ec.generate_private_key(curve)
    signer = SoftwareSigner(key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(name_length))
        .issuer_name(_name(name_length))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW)
        .not_valid_after(NOW + datetime.timedelta(days=1))
    )
    der = sign_certificate(builder, signer).public_bytes(serialization.Encoding.DER)
    assert _reencoded(asn1_x509.Certificate, der, "tbs_certificate", "signature_value") == der


def test_crl_bytes_equal_the_asn1crypto_encoding() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(_name(10))
        .last_update(NOW)
        .next_update(NOW + datetime.timedelta(days=1))
    )
    der = sign_crl(builder, SoftwareSigner(key)).public_bytes(serialization.Encoding.DER)
    assert _reencoded(asn1_crl.CertificateList, der, "tbs_cert_list", "signature") == der


def test_a_draft_that_is_not_one_sequence_is_refused() -> None:
    from fleetid.formats import x509_sign as certsign

    signer = SoftwareSigner(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(EncodingError):
        certsign._resign(b"\x31\x00", signer)
    with pytest.raises(EncodingError):
        certsign._resign(b"\x30\x02\x02\x00", signer)
