"""draft-ietf-lamps-csr-attestation in PKCS#10: our encoder against OpenSSL and pyasn1, and the
structural rules of §4.1/§4.3 (at least one statement, one attribute, one value, DER only)."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta

import pytest
from asn1crypto import core, keys
from asn1crypto import csr as asn1_csr
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pyasn1.codec.der import decoder as der_decoder
from pyasn1_alt_modules import rfc2986
from tests.optional import require_tool

from fleetid.crypto.signer import SoftwareSigner
from fleetid.errors import EncodingError
from fleetid.formats.csr_attestation import (
    FLEETID_SE_KEY_ATTESTATION_OID,
    ID_AA_ATTESTATION,
    AttestationBundle,
    AttestationStatement,
    attestation_bundle_of,
    build_attested_csr,
    decode_attestation_bundle,
    encode_attestation_bundle,
)

DER = serialization.Encoding.DER
NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "device 1")])


def _cert(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    now = datetime(2027, 1, 1, tzinfo=UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(NAME)
        .issuer_name(NAME)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )


@pytest.fixture
def bundle() -> AttestationBundle:
    cert = _cert(ec.generate_private_key(ec.SECP256R1()))
    return AttestationBundle(
        statements=(
            AttestationStatement(
                type=FLEETID_SE_KEY_ATTESTATION_OID, statement=cert.public_bytes(DER)
            ),
        ),
        certificates=(cert,),
    )


def test_oid_is_id_aa_59() -> None:
    assert ID_AA_ATTESTATION == "1.2.840.113549.1.9.16.2.59"


def test_bundle_round_trips(bundle: AttestationBundle) -> None:
    assert decode_attestation_bundle(encode_attestation_bundle(bundle)) == bundle


def test_bundle_without_certs_omits_the_field(bundle: AttestationBundle) -> None:
    bare = AttestationBundle(statements=bundle.statements)
    der = encode_attestation_bundle(bare)
    assert decode_attestation_bundle(der) == bare
    outer = core.Sequence.load(der)
    assert len(outer) == 1  # only ``attestations``


def test_bundle_needs_a_statement() -> None:
    with pytest.raises(EncodingError):
        AttestationBundle(statements=())
    empty = bytes.fromhex("3002" + "3000")  # SEQUENCE { attestations SEQUENCE {} }
    with pytest.raises(EncodingError):
        decode_attestation_bundle(empty)


def test_ber_bundle_is_refused(bundle: AttestationBundle) -> None:
    der = encode_attestation_bundle(bundle)
    # Re-encode the outer length in long form (0x82 0x00 NN is BER, not DER, for short lengths).
    body = der[2:] if der[1] < 0x80 else der[2 + (der[1] & 0x7F) :]
    ber = bytes((0x30, 0x84)) + len(body).to_bytes(4, "big") + body
    with pytest.raises(EncodingError):
        decode_attestation_bundle(ber)


def test_garbage_is_refused() -> None:
    with pytest.raises(EncodingError):
        decode_attestation_bundle(b"\x04\x03abc")


def test_csr_carries_one_attribute_with_one_bundle(bundle: AttestationBundle) -> None:
    signer = SoftwareSigner(ec.generate_private_key(ec.SECP384R1()))
    csr = build_attested_csr(subject=NAME, signer=signer, bundle=bundle)
    assert csr.is_signature_valid
    assert csr.signature_hash_algorithm is not None
    assert csr.signature_hash_algorithm.name == "sha384"
    assert attestation_bundle_of(csr) == bundle
    # Independent decoder: pyasn1-alt-modules' RFC 2986 module sees one id-aa 59 attribute.
    request, rest = der_decoder.decode(
        csr.public_bytes(DER), asn1Spec=rfc2986.CertificationRequest()
    )
    assert rest == b""
    attributes = request["certificationRequestInfo"]["attributes"]
    assert [str(a["type"]) for a in attributes] == [ID_AA_ATTESTATION]
    assert len(attributes[0]["values"]) == 1
    assert bytes(attributes[0]["values"][0]) == encode_attestation_bundle(bundle)


def test_plain_csr_has_no_bundle() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(NAME).sign(key, hashes.SHA256())
    assert attestation_bundle_of(csr) is None


def _csr_with_attributes(values: list[list[bytes]]) -> x509.CertificateSigningRequest:
    key = ec.generate_private_key(ec.SECP256R1())
    signer = SoftwareSigner(key)
    info = asn1_csr.CertificationRequestInfo(
        {
            "version": "v1",
            "subject": asn1_x509.Name.load(NAME.public_bytes()),
            "subject_pk_info": keys.PublicKeyInfo.load(
                key.public_key().public_bytes(DER, serialization.PublicFormat.SubjectPublicKeyInfo)
            ),
            "attributes": [
                {
                    "type": ID_AA_ATTESTATION,
                    "values": _SetOfAny([core.Any.load(v) for v in vs]),
                }
                for vs in values
            ],
        }
    )
    request = asn1_csr.CertificationRequest(
        {
            "certification_request_info": info,
            "signature_algorithm": {"algorithm": "sha256_ecdsa"},
            "signature": signer.sign(info.dump()),
        }
    )
    return x509.load_der_x509_csr(request.dump())


class _SetOfAny(core.SetOf):  # type: ignore[misc]
    _child_spec = core.Any


def test_two_attributes_are_refused(bundle: AttestationBundle) -> None:
    der = encode_attestation_bundle(bundle)
    with pytest.raises(EncodingError):
        attestation_bundle_of(_csr_with_attributes([[der], [der]]))
    assert attestation_bundle_of(_csr_with_attributes([[der]])) == bundle


def test_two_values_are_refused(bundle: AttestationBundle) -> None:
    der = encode_attestation_bundle(bundle)
    with pytest.raises(EncodingError):
        attestation_bundle_of(_csr_with_attributes([[der, der]]))


def test_openssl_verifies_the_attested_csr(bundle: AttestationBundle, tmp_path) -> None:  # type: ignore[no-untyped-def]
    openssl = require_tool("openssl")
    signer = SoftwareSigner(ec.generate_private_key(ec.SECP256R1()))
    csr = build_attested_csr(subject=NAME, signer=signer, bundle=bundle)
    path = tmp_path / "req.pem"
    path.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    result = subprocess.run(
        [openssl, "req", "-in", str(path), "-noout", "-verify"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "verify OK" in result.stdout + result.stderr
    parsed = subprocess.run(
        [openssl, "asn1parse", "-in", str(path)], capture_output=True, text=True, check=True
    )
    assert ":1.2.840.113549.1.9.16.2.59" in parsed.stdout
