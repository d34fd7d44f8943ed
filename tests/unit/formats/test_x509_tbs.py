"""formats.x509_tbs readers: the SubjectPublicKeyInfo as it stands, for v3 and v1 certificates."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.formats import x509_tbs
from fleetid.formats.tlv import TlvError, decode_tlv, decode_tlvs, encode_tlv

_SPKI = serialization.PublicFormat.SubjectPublicKeyInfo


def _certificate(key: ec.EllipticCurvePrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "tbs reader")])
    return _issued(name, name, key).public_bytes(serialization.Encoding.DER)


def _issued(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey | None = None
) -> x509.Certificate:
    key = key or ec.generate_private_key(ec.SECP256R1())
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(datetime(2026, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2027, 1, 1, tzinfo=UTC))
        .sign(key, hashes.SHA256())
    )


def _without_version(der: bytes) -> bytes:
    """The same certificate as v1: its TBS without ``[0] version`` (the signature no longer
    verifies; only the structure matters here)."""
    certificate = decode_tlvs(decode_tlv(der)[0].value)
    fields = decode_tlvs(certificate[0].value)
    assert fields[0].tag == 0xA0
    tbs = encode_tlv(0x30, b"".join(f.encode() for f in fields[1:]))
    return encode_tlv(0x30, tbs + certificate[1].encode() + certificate[2].encode())


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1()])
@pytest.mark.parametrize("v1", [False, True])
def test_subject_public_key_info_is_pycas(curve: ec.EllipticCurve, v1: bool) -> None:
    key = ec.generate_private_key(curve)
    der = _certificate(key)
    if v1:
        der = _without_version(der)
    parsed = x509.load_der_x509_certificate(der)
    assert parsed.version is (x509.Version.v1 if v1 else x509.Version.v3)
    expected = key.public_key().public_bytes(serialization.Encoding.DER, _SPKI)
    assert x509_tbs.subject_public_key_info(der) == expected
    fields = x509_tbs.tbs_fields(der)
    assert decode_tlv(fields[1].encode())[0].value == b"\x07"  # serialNumber at index 1
    assert fields[5].encode() == parsed.subject.public_bytes()  # subject at 5


def test_a_truncated_certificate_is_refused() -> None:
    der = _certificate(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(TlvError):
        x509_tbs.subject_public_key_info(der[:40])


def _cn(value: str, string_type: x509.name._ASN1Type | None = None) -> x509.Name:
    if string_type is None:
        return x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, value)])
    return x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, value, string_type)])


def test_names_issuer_compares_the_der_then_pycas_names() -> None:
    ca = _issued(_cn("line CA"), _cn("root"))
    assert x509_tbs.names_issuer(_issued(_cn("device"), _cn("line CA")), ca)
    assert not x509_tbs.names_issuer(_issued(_cn("device"), _cn("other CA")), ca)
    assert not x509_tbs.names_issuer(ca, ca)  # its issuer is the root, not itself
    # The same name as a PrintableString: other bytes, which pyca's Name equality does not see
    # (it compares OIDs and values); the answer is pyca's either way.
    printable = _issued(_cn("device"), _cn("line CA", x509.name._ASN1Type.PrintableString))
    assert x509_tbs._names(printable)[0] != x509_tbs._names(ca)[1]
    assert x509_tbs.names_issuer(printable, ca) is (printable.issuer == ca.subject) is True


def test_names_of_a_v1_certificate() -> None:
    der = _certificate(ec.generate_private_key(ec.SECP256R1()))
    v3, v1 = (
        x509.load_der_x509_certificate(der),
        x509.load_der_x509_certificate(_without_version(der)),
    )
    fields = x509_tbs.tbs_fields(der)
    assert x509_tbs._names(v3) == x509_tbs._names(v1) == (fields[3].encode(), fields[5].encode())


_SERIAL = x509.NameOID.SERIAL_NUMBER


@pytest.mark.parametrize(
    ("attributes", "expected"),
    [
        ([(_SERIAL, "4790D501", x509.name._ASN1Type.PrintableString)], "4790D501"),
        ([(x509.NameOID.COMMON_NAME, "dev", None), (_SERIAL, "0A", None)], "0A"),  # pyca: P.S.
        ([(_SERIAL, "4790", x509.name._ASN1Type.UTF8String)], None),  # pyca's Name says
        ([(_SERIAL, "1", None), (_SERIAL, "2", None)], None),  # two: pyca's Name says
        ([(x509.NameOID.COMMON_NAME, "no serial", None)], None),
    ],
)
def test_printable_subject_attribute_is_read_or_left_to_pyca(
    attributes: list[tuple[x509.ObjectIdentifier, str, x509.name._ASN1Type | None]],
    expected: str | None,
) -> None:
    name = x509.Name(
        [
            x509.NameAttribute(oid, value) if kind is None else x509.NameAttribute(oid, value, kind)
            for oid, value, kind in attributes
        ]
    )
    certificate = _issued(name, _cn("issuer"))
    read = x509_tbs.printable_subject_attribute(certificate, x509_tbs.oid(_SERIAL))
    assert read == expected
    if read is not None:  # what pyca reads from the same certificate
        assert [a.value for a in certificate.subject.get_attributes_for_oid(_SERIAL)] == [read]
