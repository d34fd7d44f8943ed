"""Published V2X vectors: CAMP ECIES and AES-CCM (IEEE 1609.2 parameters), Whyte's COER certificate.

Sources and pitfalls are in ``shared/vectors/v2x/PROVENANCE.md``; notably ``ecies.txt`` prints the
AES key under its "P1" label, so the real P1 values come from ``ecies-p1-values.json``.
"""

from __future__ import annotations

import hashlib
import re

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from tests.vector_loader import load_json, vector_path

from fleetid.crypto.ecies import (
    EciesWrappedKey,
    ccm_decrypt,
    ccm_encrypt,
    ecies_unwrap,
    ecies_wrap,
)
from fleetid.errors import EncodingError, VerificationError
from fleetid.formats.ieee1609 import (
    datetime_from_time64,
    decode_certificate,
    encode,
    encode_certificate,
    hashed_id8,
    open_signed_data,
    time32,
    verify_signed_data,
)

_FIELD = re.compile(r"^(\w+) = 0x([0-9A-Fa-f]+)\s*$", re.MULTILINE)


def _blocks(relative: str) -> list[dict[str, bytes]]:
    text = vector_path(relative).read_text()
    parts = re.split(r"^Test Vector #\d+:", text, flags=re.MULTILINE)[1:]
    blocks = []
    for part in parts:
        fields: dict[str, bytes] = {}
        for name, value in _FIELD.findall(part):
            fields.setdefault(name, bytes.fromhex(value))
        blocks.append(fields)
    return blocks


def _ecies_vectors() -> list[tuple[int, dict[str, bytes]]]:
    return list(enumerate(_blocks("v2x/ecies.txt"), start=1))


def _p1(number: int) -> bytes:
    return bytes.fromhex(load_json("v2x/ecies-p1-values.json")["p1_by_test_vector"][str(number)])


def test_vector_files_hold_what_provenance_says() -> None:
    assert len(_ecies_vectors()) == 4
    assert len(_blocks("v2x/aesccm.txt")) == 6


@pytest.mark.parametrize("number", [1, 2, 3, 4])
def test_ecies_wrap_reproduces_camp_vector(number: int) -> None:
    vector = dict(_ecies_vectors())[number]
    curve = ec.SECP256R1()
    ephemeral = ec.derive_private_key(int.from_bytes(vector["v"], "big"), curve)
    recipient = ec.derive_private_key(int.from_bytes(vector["r"], "big"), curve)
    # The printed R and V are consistent with the printed scalars.
    numbers = recipient.public_key().public_numbers()
    assert (numbers.x, numbers.y) == (
        int.from_bytes(vector["Rx"], "big"),
        int.from_bytes(vector["Ry"], "big"),
    )
    wrapped = ecies_wrap(vector["k"], recipient.public_key(), _p1(number), ephemeral=ephemeral)
    expected_v = ec.EllipticCurvePublicNumbers(
        int.from_bytes(vector["Vx"], "big"), int.from_bytes(vector["Vy"], "big"), curve
    ).public_key()
    assert wrapped.ephemeral_point == expected_v.public_bytes(
        Encoding.X962, PublicFormat.CompressedPoint
    )
    assert wrapped.ciphertext == vector["C"]
    assert wrapped.tag == vector["T"]


@pytest.mark.parametrize("number", [1, 2, 3, 4])
def test_ecies_unwrap_opens_camp_vector(number: int) -> None:
    vector = dict(_ecies_vectors())[number]
    curve = ec.SECP256R1()
    recipient = ec.derive_private_key(int.from_bytes(vector["r"], "big"), curve)
    point = b"\x04" + vector["Vx"] + vector["Vy"]
    wrapped = EciesWrappedKey(ephemeral_point=point, ciphertext=vector["C"], tag=vector["T"])
    assert ecies_unwrap(wrapped, recipient, _p1(number)) == vector["k"]


def test_ecies_printed_p1_label_is_wrong_and_fails_the_tag() -> None:
    # PROVENANCE pitfall: with the printed "P1" (really k, zero-padded here to 32 bytes) or the
    # other vector's P1, the tag does not verify.
    vector = dict(_ecies_vectors())[1]
    recipient = ec.derive_private_key(int.from_bytes(vector["r"], "big"), ec.SECP256R1())
    wrapped = EciesWrappedKey(
        ephemeral_point=b"\x04" + vector["Vx"] + vector["Vy"],
        ciphertext=vector["C"],
        tag=vector["T"],
    )
    with pytest.raises(VerificationError):
        ecies_unwrap(wrapped, recipient, _p1(3))
    with pytest.raises(VerificationError):
        ecies_unwrap(wrapped, recipient, vector["P1"].ljust(32, b"\0"))


def test_ecies_tampered_tag_is_refused() -> None:
    vector = dict(_ecies_vectors())[1]
    recipient = ec.derive_private_key(int.from_bytes(vector["r"], "big"), ec.SECP256R1())
    tag = bytes([vector["T"][0] ^ 1]) + vector["T"][1:]
    wrapped = EciesWrappedKey(
        ephemeral_point=b"\x04" + vector["Vx"] + vector["Vy"], ciphertext=vector["C"], tag=tag
    )
    with pytest.raises(VerificationError):
        ecies_unwrap(wrapped, recipient, _p1(1))


@pytest.mark.parametrize("number", [1, 2, 3, 4, 5, 6])
def test_aes_ccm_reproduces_camp_vector(number: int) -> None:
    vector = _blocks("v2x/aesccm.txt")[number - 1]
    assert len(vector["N"]) == 12
    assert ccm_encrypt(vector["K"], vector["N"], vector["P"]) == vector["C_T"]
    assert ccm_decrypt(vector["K"], vector["N"], vector["C_T"]) == vector["P"]


@pytest.mark.parametrize("number", [1, 4])
def test_aes_ccm_bad_tag_is_refused(number: int) -> None:
    vector = _blocks("v2x/aesccm.txt")[number - 1]
    tampered = vector["C_T"][:-1] + bytes([vector["C_T"][-1] ^ 0x80])
    with pytest.raises(VerificationError):
        ccm_decrypt(vector["K"], vector["N"], tampered)


def test_test_certificate_round_trips_byte_identically() -> None:
    data = vector_path("v2x/TestCertificate.coer").read_bytes()
    hex_text = vector_path("v2x/TestCertificate.coer.hex").read_text()
    assert bytes.fromhex("".join(hex_text.split())) == data
    certificate = decode_certificate(data)
    assert encode_certificate(certificate) == data


def test_test_certificate_decodes_to_its_value_notation() -> None:
    # Values from TestCertificate.txt (value notation published with the encoding).
    certificate = decode_certificate(vector_path("v2x/TestCertificate.coer").read_bytes())
    value = certificate.value
    assert value["version"] == 3
    assert value["type"] == "implicit"
    assert value["issuer"] == ("sha256AndDigest", bytes([1]) * 8)
    tbs = value["toBeSigned"]
    assert tbs["id"] == ("linkageData", {"iCert": 2, "linkage-value": bytes([3]) * 9})
    assert tbs["cracaId"] == bytes([4]) * 3
    assert tbs["crlSeries"] == 5
    assert tbs["validityPeriod"] == {"start": 101058054, "duration": ("hours", 169)}
    assert tbs["region"] == (
        "identifiedRegion",
        [("countryOnly", 124), ("countryOnly", 484), ("countryOnly", 840)],
    )
    assert tbs["appPermissions"] == [{"psid": 32}]
    assert tbs["verifyKeyIndicator"] == ("reconstructionValue", ("compressed-y-1", bytes([8]) * 32))
    assert "signature" not in value


def test_test_certificate_hashed_id8() -> None:
    # The vectors give no HashedId8; IEEE 1609.2 §6.4.3 defines it as the low-order 8 bytes of
    # SHA-256 over the canonical COER encoding, which this implicit certificate already is.
    data = vector_path("v2x/TestCertificate.coer").read_bytes()
    assert hashed_id8(data) == hashlib.sha256(data).digest()[-8:]


@pytest.mark.parametrize("cut", [1, 10, 45, 88])
def test_truncated_test_certificate_is_an_encoding_error(cut: int) -> None:
    data = vector_path("v2x/TestCertificate.coer").read_bytes()
    with pytest.raises(EncodingError):
        decode_certificate(data[:cut])


def test_test_certificate_with_trailing_bytes_is_an_encoding_error() -> None:
    data = vector_path("v2x/TestCertificate.coer").read_bytes()
    with pytest.raises(EncodingError):
        decode_certificate(data + b"\x00")


# A real ETSI TS 103 097 authorization ticket and a CAM signed with it (signer digest), as
# captured in vanetza's test suite: riebl/vanetza @ 9811d58e,
# vanetza/geonet/tests/router_indicate.cpp, test shb_secured_v3_message_digest
# (certificate_buffer, and gn_buffer minus its 4-byte GeoNetworking basic header).
VANETZA_AT_CERTIFICATE = bytes.fromhex(
    "8003008056dfd6d627a362dc108300000000001ddff7b58400a8010280012481040301000080012581050401"
    "901a258080820427bb27c998c1eca2b10e7107980244518b3c50a3a327b5b190d090f1451f3d808083c2f3ca"
    "ebc7fa35945c030a5ae01a417adf6dffd541ccd2d92bfeb63dc15689cbd6b8e32bd5e866d9faa2fe5595e2db"
    "b9be3e965a7094258b4a249dfb758a07"
)
VANETZA_SIGNED_CAM = bytes.fromhex(
    "0381004003805620500280003201001400fe384ce0b890bf6b2b741f45286806640965804203bf0000a00007"
    "d1000002024ce0b8902e6b005a9d422bce35bb82023c2306da3596d4583be1206d0302968acb33e661ffaa10"
    "3fe01419804001240001c80bbaada06480127cff384ce0b89080829deede159a66081d036f7b282d8ff043c6"
    "355f510765b14277b7722715590c9e4782fcbee33abc5193fbbda7f04fdeb2fe88a5195ea703caf412213237"
    "e85dda"
)


def test_real_etsi_certificate_and_cam_round_trip_byte_identically() -> None:
    certificate = decode_certificate(VANETZA_AT_CERTIFICATE)
    assert encode_certificate(certificate.value) == VANETZA_AT_CERTIFICATE
    message = open_signed_data(VANETZA_SIGNED_CAM)
    assert encode("Ieee1609Dot2Data", message.value) == VANETZA_SIGNED_CAM
    assert certificate.tbs["id"] == ("none", None)
    assert [p["psid"] for p in certificate.tbs["appPermissions"]] == [36, 37]


def test_real_cam_names_its_certificate_by_our_hashed_id8() -> None:
    message = open_signed_data(VANETZA_SIGNED_CAM)
    assert message.signer == ("digest", hashed_id8(VANETZA_AT_CERTIFICATE))
    assert message.header_info["psid"] == 36


def test_real_cam_signature_verifies_with_the_1609_data_to_sign_rule() -> None:
    certificate = decode_certificate(VANETZA_AT_CERTIFICATE)
    message = open_signed_data(VANETZA_SIGNED_CAM)
    verify_signed_data(message, certificate.verification_key(), VANETZA_AT_CERTIFICATE)
    # Generated inside the ticket's validity period (Time64 vs Time32 on the same TAI scale).
    start = certificate.tbs["validityPeriod"]["start"]
    generated = time32(datetime_from_time64(message.header_info["generationTime"]))
    assert start <= generated <= start + 168 * 3600


def test_real_cam_with_a_flipped_payload_byte_fails_verification() -> None:
    certificate = decode_certificate(VANETZA_AT_CERTIFICATE)
    tampered = bytearray(VANETZA_SIGNED_CAM)
    tampered[20] ^= 0x01  # inside the unsecured CAM payload
    with pytest.raises(VerificationError):
        verify_signed_data(
            open_signed_data(bytes(tampered)),
            certificate.verification_key(),
            VANETZA_AT_CERTIFICATE,
        )


def test_real_cam_verified_against_no_certificate_fails() -> None:
    # The signer is a digest, so the data to sign includes H(certificate); "self" would not verify.
    certificate = decode_certificate(VANETZA_AT_CERTIFICATE)
    with pytest.raises(VerificationError):
        verify_signed_data(open_signed_data(VANETZA_SIGNED_CAM), certificate.verification_key())
