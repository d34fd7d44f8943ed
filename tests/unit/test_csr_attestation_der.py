"""The AttestationBundle is read as DER only: its envelope is checked by re-encoding (the
certificates inside go through pyca, which takes DER only), and the cheap presence test reads
no bundle."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from asn1crypto import parser
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fleetid.crypto.signer import SoftwareSigner
from fleetid.errors import EncodingError
from fleetid.formats.csr_attestation import (
    ID_AA_ATTESTATION,
    AttestationBundle,
    AttestationStatement,
    attestation_bundle_of,
    build_attested_csr,
    decode_attestation_bundle,
    encode_attestation_bundle,
    has_attestation_attribute,
)

BUNDLE = AttestationBundle(
    statements=(AttestationStatement(type="1.3.6.1.4.1.32473.1", statement=b"\x04\x02\xab\xcd"),)
)


def test_der_bundle_round_trips() -> None:
    der = encode_attestation_bundle(BUNDLE)
    assert der[0] == 0x30 and der[1] == len(der) - 2  # short-form length: under 128 bytes
    assert decode_attestation_bundle(der) == BUNDLE


def test_non_minimal_length_is_refused() -> None:
    der = encode_attestation_bundle(BUNDLE)
    ber = b"\x30\x81" + der[1:]  # the same length in long form (X.690 §10.1 forbids it in DER)
    with pytest.raises(EncodingError, match="not in DER form"):
        decode_attestation_bundle(ber)


def test_presence_is_told_without_reading_the_bundle() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    with_bundle = build_attested_csr(subject=subject, signer=SoftwareSigner(key), bundle=BUNDLE)
    assert has_attestation_attribute(with_bundle)
    broken = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject)
        .add_attribute(x509.ObjectIdentifier(ID_AA_ATTESTATION), b"not a bundle")
        .sign(key, hashes.SHA256())
    )
    assert has_attestation_attribute(broken)
    with pytest.raises(EncodingError):
        attestation_bundle_of(broken)
    plain = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    assert not has_attestation_attribute(plain)


def _certificate() -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cert")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(datetime(2026, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2027, 1, 1, tzinfo=UTC))
        .sign(key, hashes.SHA256())
    )


def _rewrite_at(der: bytes, path: tuple[int, ...], rewrite: Callable[[bytes], bytes]) -> bytes:
    """``der`` with the element at ``path`` (child indexes from the outer SEQUENCE) replaced by
    ``rewrite(element)``, and every enclosing length adjusted (in DER form)."""
    if not path:
        return rewrite(der)
    class_, method, tag, _header, contents, _trailer = parser.parse(der)
    children: list[bytes] = []
    rest = contents
    while rest:
        child = parser.parse(rest)
        size = len(child[3]) + len(child[4])
        children.append(rest[:size])
        rest = rest[size:]
    children[path[0]] = _rewrite_at(children[path[0]], path[1:], rewrite)
    return parser.emit(class_, method, tag, b"".join(children))


def _long_form(element: bytes) -> bytes:
    """The same element with a leading zero octet in its length (X.690 §10.1 forbids it)."""
    contents = parser.parse(element)[4]
    size = len(contents).to_bytes(max(1, (len(contents).bit_length() + 7) // 8), "big")
    return element[:1] + bytes([0x80 | (len(size) + 1)]) + b"\x00" + size + contents


def _long_form_at(der: bytes, path: tuple[int, ...]) -> bytes:
    return _rewrite_at(der, path, _long_form)


@pytest.mark.parametrize(
    ("path", "element"),
    [
        ((0,), "attestations"),
        ((0, 0), "an AttestationStatement"),
        ((0, 0, 0), "a statement type"),
        ((1,), "certs"),
    ],
)
def test_non_minimal_length_inside_the_envelope_is_refused(
    path: tuple[int, ...], element: str
) -> None:
    der = encode_attestation_bundle(
        AttestationBundle(statements=BUNDLE.statements, certificates=(_certificate(),))
    )
    ber = _long_form_at(der, path)
    assert ber != der and len(ber) > len(der), element
    with pytest.raises(EncodingError, match="not in DER form"):
        decode_attestation_bundle(ber)


def test_a_non_minimal_statement_type_oid_is_refused() -> None:
    der = encode_attestation_bundle(BUNDLE)
    # 1.3.6.1.4.1.32473.1 with its last arc as 0x80 0x01 (X.690 §8.19.2: minimal octets).
    padded = _rewrite_at(
        der, (0, 0, 0), lambda oid: parser.emit(0, 0, 6, parser.parse(oid)[4][:-1] + b"\x80\x01")
    )
    with pytest.raises(EncodingError, match="not in DER form"):
        decode_attestation_bundle(padded)
