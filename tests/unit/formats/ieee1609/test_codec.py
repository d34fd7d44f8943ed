"""IEEE 1609.2 / ETSI TS 103 097 encodings: codec, certificates, HashedId8, signatures, time."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from Crypto.Hash import SHA256, SHA384
from Crypto.PublicKey import ECC
from Crypto.Signature import DSS
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from fleetid.crypto.signer import SoftwareSigner
from fleetid.crypto.v2xkeys import generate_key
from fleetid.errors import EncodingError, VerificationError
from fleetid.formats.ieee1609 import (
    datetime_from_time32,
    datetime_from_time64,
    decode,
    decode_certificate,
    encode,
    hashed_id8,
    open_signed_data,
    sign_certificate,
    sign_data,
    time32,
    time64,
    unsecured,
    verify_certificate_signature,
    verify_signed_data,
)
from fleetid.formats.ieee1609.codec import schema
from fleetid.formats.ieee1609.keys import (
    encryption_key_value,
    point_value,
    rs_from_signature,
    verification_key_value,
)

ALL_CURVES = ["nistP256", "brainpoolP256r1", "nistP384", "brainpoolP384r1"]

# Golden COER bytes produced by an independent asn1c-based client (mikelngelous/v2x-pki-client,
# src/test/test_golden_bytes.cpp, commit d7df5fd8): InnerEcRequest, SharedAtRequest and
# ToBeSignedData built from fixed values.
GOLDEN_INNER_EC_REQUEST = bytes.fromhex(
    "000c7632787070b692d6974732d73"[:0]
    + "000c76327870 6b692d6974732d73 0100 80826b17d1f2e12c4247f8bce6e563a440f277037d812deb33"
    "a0f4a13945d898c296 24000f4240 8402d0 0101 0001 24".replace(" ", "")
)
GOLDEN_SHARED_AT_REQUEST = bytes.fromhex(
    "00aabbccdd11223344 0102030405060708090a0b0c0d0e0f10 01 24000f4240 840018 0101 0001 24".replace(
        " ", ""
    )
)
GOLDEN_TBS_DATA = bytes.fromhex(
    "4003800 8deadbeefcafebabe 4002026f00000001 2a05f200".replace(" ", "")
)


def tbs_certificate(key: ec.EllipticCurvePrivateKey, *, name: str = "ca") -> dict[str, Any]:
    return {
        "id": ("name", name),
        "cracaId": b"\x00\x00\x00",
        "crlSeries": 0,
        "validityPeriod": {"start": 600_000_000, "duration": ("years", 5)},
        "appPermissions": [{"psid": 623, "ssp": ("bitmapSsp", b"\x01\xc0")}],
        "verifyKeyIndicator": ("verificationKey", verification_key_value(key.public_key())),
    }


def test_schema_is_compiled_once_per_process() -> None:
    assert schema() is schema()


def test_golden_inner_ec_request_from_independent_encoder() -> None:
    value = {
        "itsId": b"v2xpki-its-s",
        "certificateFormat": 1,
        "publicKeys": {
            "verificationKey": (
                "ecdsaNistP256",
                (
                    "compressed-y-0",
                    bytes.fromhex(
                        "6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296"
                    ),
                ),
            )
        },
        "requestedSubjectAttributes": {
            "validityPeriod": {"start": 1_000_000, "duration": ("hours", 720)},
            "appPermissions": [{"psid": 36}],
        },
    }
    assert len(GOLDEN_INNER_EC_REQUEST) == 63
    assert encode("InnerEcRequest", value) == GOLDEN_INNER_EC_REQUEST
    assert decode("InnerEcRequest", GOLDEN_INNER_EC_REQUEST) == value


def test_golden_shared_at_request_from_independent_encoder() -> None:
    value = {
        "eaId": bytes.fromhex("aabbccdd11223344"),
        "keyTag": bytes(range(1, 17)),
        "certificateFormat": 1,
        "requestedSubjectAttributes": {
            "validityPeriod": {"start": 1_000_000, "duration": ("hours", 24)},
            "appPermissions": [{"psid": 36}],
        },
    }
    assert len(GOLDEN_SHARED_AT_REQUEST) == 39
    assert encode("SharedAtRequest", value) == GOLDEN_SHARED_AT_REQUEST


def test_golden_to_be_signed_data_from_independent_encoder() -> None:
    value = {
        "payload": {"data": unsecured(bytes.fromhex("deadbeefcafebabe"))},
        "headerInfo": {"psid": 623, "generationTime": 5_000_000_000},
    }
    assert len(GOLDEN_TBS_DATA) == 24
    assert encode("ToBeSignedData", value) == GOLDEN_TBS_DATA
    assert decode("ToBeSignedData", GOLDEN_TBS_DATA) == value


def test_etsi102941_data_version_is_one_octet() -> None:
    # EtsiTs102941Data.version is Version (v1): a one-octet constrained integer (MessagesCa).
    encoded = encode(
        "EtsiTs102941Data",
        {"version": 1, "content": ("enrolmentRequest", unsecured(b"x"))},
    )
    # Same framing as the independent client's EtsiPrefix test: 01 (version) 80 (choice 0).
    assert encoded[:2] == b"\x01\x80"
    assert encoded[2:] == encode("Ieee1609Dot2Data", unsecured(b"x"))


@pytest.mark.parametrize(
    "bad",
    [
        GOLDEN_TBS_DATA[:-1],  # truncated
        GOLDEN_TBS_DATA + b"\x00",  # trailing byte
        b"",
    ],
)
def test_decode_refuses_truncated_or_trailing(bad: bytes) -> None:
    with pytest.raises(EncodingError):
        decode("ToBeSignedData", bad)


def test_decode_refuses_wrong_protocol_version() -> None:
    data = bytes([2]) + encode("Ieee1609Dot2Data", unsecured(b"x"))[1:]
    with pytest.raises(EncodingError):
        decode("Ieee1609Dot2Data", data)


def test_default_values_are_omitted_and_explicit_defaults_refused() -> None:
    canonical = encode("PsidGroupPermissions", {"subjectPermissions": ("all", None)})
    explicit = encode(
        "PsidGroupPermissions", {"subjectPermissions": ("all", None), "minChainLength": 1}
    )
    assert canonical == explicit == bytes.fromhex("0081")
    # minChainLength 1 sent explicitly is valid OER but not canonical (X.696 §8.3.1).
    with pytest.raises(EncodingError):
        decode("PsidGroupPermissions", bytes.fromhex("80810101"))
    assert decode("PsidGroupPermissions", bytes.fromhex("80810102"))["minChainLength"] == 2


def test_encode_refuses_a_value_outside_the_type() -> None:
    with pytest.raises(EncodingError):
        encode("HashedId8", b"\x00" * 7)


@pytest.mark.parametrize("curve", ALL_CURVES)
def test_self_signed_certificate_verifies_and_round_trips(curve: str) -> None:
    key = generate_key(curve)
    certificate = sign_certificate(
        tbs_certificate(key), SoftwareSigner(key), issuer_certificate=None
    )
    assert decode_certificate(certificate.encoded).value == certificate.value
    verify_certificate_signature(certificate, None)
    expected_hash = "sha384" if curve.endswith("384") or curve.endswith("384r1") else "sha256"
    assert certificate.value["issuer"] == ("self", expected_hash)
    assert (
        hashed_id8(certificate.encoded)
        == hashlib.new(expected_hash, certificate.encoded).digest()[-8:]
    )


@pytest.mark.parametrize("curve", ALL_CURVES)
def test_tampered_certificate_fails_verification(curve: str) -> None:
    key = generate_key(curve)
    certificate = sign_certificate(
        tbs_certificate(key), SoftwareSigner(key), issuer_certificate=None
    )
    value = dict(certificate.value)
    value["toBeSigned"] = dict(value["toBeSigned"], crlSeries=1)
    tampered = decode_certificate(encode("Certificate", value))
    with pytest.raises(VerificationError):
        verify_certificate_signature(tampered, None)


@pytest.mark.parametrize(
    ("root_curve", "leaf_curve"), [("nistP384", "nistP256"), ("brainpoolP384r1", "brainpoolP256r1")]
)
def test_issued_certificate_chains_to_its_issuer_only(root_curve: str, leaf_curve: str) -> None:
    root_key, leaf_key, other_key = (
        generate_key(root_curve),
        generate_key(leaf_curve),
        generate_key(root_curve),
    )
    root = sign_certificate(
        tbs_certificate(root_key), SoftwareSigner(root_key), issuer_certificate=None
    )
    other = sign_certificate(
        tbs_certificate(other_key), SoftwareSigner(other_key), issuer_certificate=None
    )
    leaf = sign_certificate(
        tbs_certificate(leaf_key, name="ea"),
        SoftwareSigner(root_key),
        issuer_certificate=root.encoded,
    )
    # A 384-bit issuer is named by its SHA-384 HashedId8.
    assert leaf.value["issuer"] == ("sha384AndDigest", root.hashed_id8)
    verify_certificate_signature(leaf, root)
    with pytest.raises(VerificationError):
        verify_certificate_signature(leaf, other)
    with pytest.raises(VerificationError):
        verify_certificate_signature(leaf, None)


def test_hashed_id8_is_over_the_canonical_form() -> None:
    key = generate_key("nistP256")
    certificate = sign_certificate(
        tbs_certificate(key), SoftwareSigner(key), issuer_certificate=None
    )
    value = certificate.value
    # The same certificate with its key uncompressed and r given as a compressed point.
    uncompressed = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    tbs = dict(
        value["toBeSigned"],
        verifyKeyIndicator=("verificationKey", ("ecdsaNistP256", point_value(uncompressed))),
    )
    choice, body = value["signature"]
    signature = (choice, dict(body, rSig=("compressed-y-1", body["rSig"][1])))
    variant = encode("Certificate", dict(value, toBeSigned=tbs, signature=signature))
    assert variant != certificate.encoded
    assert hashed_id8(variant) == hashed_id8(certificate.encoded)
    assert hashed_id8(variant) == hashlib.sha256(certificate.encoded).digest()[-8:]


def test_hashed_id8_refuses_non_certificates() -> None:
    with pytest.raises(EncodingError):
        hashed_id8(GOLDEN_TBS_DATA)


@pytest.mark.parametrize(
    ("curve", "pycryptodome_curve", "hash_module"),
    [("nistP256", "P-256", SHA256), ("nistP384", "P-384", SHA384)],
)
def test_signed_data_signature_checked_by_pycryptodome(
    curve: str, pycryptodome_curve: str, hash_module: Any
) -> None:
    key = generate_key(curve)
    payload = {"data": unsecured(b"hello V2X")}
    header = {"psid": 36, "generationTime": 600_000_000_000_000}
    message = open_signed_data(sign_data(payload, header, SoftwareSigner(key)))
    verify_signed_data(message, key.public_key())
    # Independent check of H(H(tbs) || H(signer)) with pycryptodome (signer self: empty string).
    hash_new = hash_module.new
    signing_input = hash_new(message.tbs_encoded).digest() + hash_new(b"").digest()
    r, s = rs_from_signature(message.signed_data["signature"])
    size = key.curve.key_size // 8
    verifier = DSS.new(
        ECC.import_key(
            key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint),
            curve_name=pycryptodome_curve,
        ),
        "fips-186-3",
    )
    verifier.verify(hash_new(signing_input), r.to_bytes(size, "big") + s.to_bytes(size, "big"))


@pytest.mark.parametrize("curve", ALL_CURVES)
def test_signed_data_with_other_key_or_bytes_fails(curve: str) -> None:
    key, other = generate_key(curve), generate_key(curve)
    encoded = sign_data(
        {"data": unsecured(b"a")}, {"psid": 36, "generationTime": 1}, SoftwareSigner(key)
    )
    with pytest.raises(VerificationError):
        verify_signed_data(open_signed_data(encoded), other.public_key())
    value = open_signed_data(encoded).value
    value["content"][1]["tbsData"]["payload"]["data"] = unsecured(b"b")
    with pytest.raises(VerificationError):
        verify_signed_data(open_signed_data(encode("Ieee1609Dot2Data", value)), key.public_key())


def test_encryption_key_value_refuses_384_bit_curves() -> None:
    with pytest.raises(EncodingError):
        encryption_key_value(generate_key("nistP384").public_key())


def test_time_epoch_and_leap_seconds() -> None:
    epoch = datetime(2004, 1, 1, tzinfo=UTC)
    assert time32(epoch) == 0
    assert time32(epoch + timedelta(days=1)) == 86_400
    # Five leap seconds were inserted between 2004 and 2017 (TAI − UTC: 32 s → 37 s).
    moment = datetime(2020, 1, 1, tzinfo=UTC)
    assert time32(moment) == int((moment - epoch).total_seconds()) + 5
    assert time64(moment) == time32(moment) * 1_000_000
    assert datetime_from_time32(time32(moment)) == moment
    assert datetime_from_time64(time64(moment) + 7) == moment + timedelta(microseconds=7)
    just_before_leap = datetime(2016, 12, 31, 23, 59, 59, tzinfo=UTC)
    assert time32(just_before_leap) == int((just_before_leap - epoch).total_seconds()) + 4
    assert datetime_from_time32(time32(just_before_leap)) == just_before_leap


def test_time_refuses_naive_or_pre_epoch() -> None:
    with pytest.raises(ValueError):
        time32(datetime(2020, 1, 1))
    with pytest.raises(ValueError):
        time32(datetime(2003, 12, 31, tzinfo=UTC))
    with pytest.raises(ValueError):
        datetime_from_time32(2**32)


def test_undeclared_extension_alternative_is_an_encoding_error() -> None:
    # Signature alternative 4 (sm2Signature in IEEE 1609.2-2022) is not in fleetid's subset.
    with pytest.raises(EncodingError):
        decode("Signature", bytes.fromhex("84020000"))
