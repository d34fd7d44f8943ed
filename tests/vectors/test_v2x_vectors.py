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
from tests.vectors import load_json, vector_path

from fleetid.crypto.ecies import (
    EciesWrappedKey,
    ccm_decrypt,
    ccm_encrypt,
    ecies_unwrap,
    ecies_wrap,
)
from fleetid.errors import EncodingError, VerificationError
from fleetid.formats.ieee1609 import decode_certificate, encode_certificate, hashed_id8

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
