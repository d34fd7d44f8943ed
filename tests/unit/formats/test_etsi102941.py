"""ETSI TS 102 941 encryption (certificate and pre-shared key) and the enrolment POP."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from Crypto.Cipher import AES
from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.crypto.ecies import ecies_wrap
from fleetid.crypto.signer import SoftwareSigner
from fleetid.crypto.v2xkeys import generate_key
from fleetid.errors import EncodingError, PolicyError, ProfileError, VerificationError
from fleetid.formats.etsi102941 import (
    PSID_CERTIFICATE_REQUEST,
    decode_enrolment_request,
    decode_etsi102941_data,
    decrypt,
    decrypt_for_certificate,
    decrypt_with_key,
    encode_etsi102941_data,
    encode_inner_ec_request,
    encrypt,
    encrypt_with_key,
    psk_recipient_id,
    request_hash,
    sign_enrolment_request_pop,
)
from fleetid.formats.ieee1609 import (
    decode,
    encode,
    hashed_id8,
    open_signed_data,
    sign_certificate,
    sign_data,
    unsecured,
)
from fleetid.formats.ieee1609.keys import encryption_key_value, verification_key_value

EE_CURVES = ["nistP256", "brainpoolP256r1"]
GENERATION_TIME = 600_000_000_000_000
ATTRIBUTES = {
    "validityPeriod": {"start": 600_000_000, "duration": ("hours", 120)},
    "appPermissions": [{"psid": 623, "ssp": ("bitmapSsp", b"\x01\xc0")}],
}


def ea_certificate(curve: str) -> tuple[bytes, ec.EllipticCurvePrivateKey]:
    """A self-signed EA-like certificate with an ECIES key on ``curve``; returns (COER, enc key)."""
    signing_key, encryption_key = generate_key(curve), generate_key(curve)
    tbs = {
        "id": ("name", "ea.test"),
        "cracaId": b"\x00\x00\x00",
        "crlSeries": 0,
        "validityPeriod": {"start": 600_000_000, "duration": ("years", 3)},
        "appPermissions": [{"psid": PSID_CERTIFICATE_REQUEST}],
        "encryptionKey": encryption_key_value(encryption_key.public_key()),
        "verifyKeyIndicator": ("verificationKey", verification_key_value(signing_key.public_key())),
    }
    certificate = sign_certificate(tbs, SoftwareSigner(signing_key), issuer_certificate=None)
    return certificate.encoded, encryption_key


def _mutate(message: bytes, change: Any) -> bytes:
    value = decode("Ieee1609Dot2Data", message)
    change(value["content"][1])
    return encode("Ieee1609Dot2Data", value)


# ------------------------------------------------------------------ encryption to a certificate


@pytest.mark.parametrize("curve", EE_CURVES)
def test_encrypt_decrypt_round_trip(curve: str) -> None:
    certificate, key = ea_certificate(curve)
    sealed = encrypt(b"inner signed request", certificate)
    cert_hash = hashlib.sha256(certificate).digest()
    assert decrypt(sealed.encoded, key, cert_hash, unicast=True) == b"inner signed request"
    plaintext, aes_key = decrypt_for_certificate(sealed.encoded, key, certificate)
    assert (plaintext, aes_key) == (b"inner signed request", sealed.aes_key)


@pytest.mark.parametrize("curve", EE_CURVES)
def test_wire_layout_names_the_certificate_and_uses_its_curve(curve: str) -> None:
    certificate, _ = ea_certificate(curve)
    value = decode("Ieee1609Dot2Data", encrypt(b"x", certificate).encoded)
    kind, content = value["content"]
    assert kind == "encryptedData"
    [(recipient_kind, recipient)] = content["recipients"]
    assert recipient_kind == "certRecipInfo"
    # P1 = SHA-256(certificate) ends with the recipientId (HashedId8 of the same certificate).
    assert recipient["recipientId"] == hashed_id8(certificate)
    assert recipient["recipientId"] == hashlib.sha256(certificate).digest()[-8:]
    expected = "eciesNistP256" if curve == "nistP256" else "eciesBrainpoolP256r1"
    assert recipient["encKey"][0] == expected
    assert recipient["encKey"][1]["v"][0] in ("compressed-y-0", "compressed-y-1")
    ciphertext = content["ciphertext"][1]
    assert len(ciphertext["nonce"]) == 12
    assert len(ciphertext["ccmCiphertext"]) == 1 + 16


def test_payload_cipher_checked_by_pycryptodome_ccm() -> None:
    certificate, _ = ea_certificate("nistP256")
    sealed = encrypt(b"cross-checked", certificate)
    ciphertext = decode("Ieee1609Dot2Data", sealed.encoded)["content"][1]["ciphertext"][1]
    body = ciphertext["ccmCiphertext"]
    cipher = AES.new(sealed.aes_key, AES.MODE_CCM, nonce=ciphertext["nonce"], mac_len=16)
    assert cipher.decrypt_and_verify(body[:-16], body[-16:]) == b"cross-checked"


@pytest.mark.parametrize("curve", EE_CURVES)
def test_bad_ccm_tag_is_a_verification_error(curve: str) -> None:
    certificate, key = ea_certificate(curve)
    sealed = encrypt(b"payload", certificate)

    def flip_tag(content: dict[str, Any]) -> None:
        body = content["ciphertext"][1]
        body["ccmCiphertext"] = body["ccmCiphertext"][:-1] + bytes([body["ccmCiphertext"][-1] ^ 1])

    with pytest.raises(VerificationError):
        decrypt(_mutate(sealed.encoded, flip_tag), key, hashlib.sha256(certificate).digest())


@pytest.mark.parametrize("curve", EE_CURVES)
def test_wrong_recipient_hash_is_a_verification_error(curve: str) -> None:
    certificate, key = ea_certificate(curve)
    other_certificate, _ = ea_certificate(curve)
    sealed = encrypt(b"payload", certificate)
    with pytest.raises(VerificationError):
        decrypt(sealed.encoded, key, hashlib.sha256(other_certificate).digest())


def test_right_recipient_id_wrong_p1_is_a_verification_error() -> None:
    # Same low-order 8 bytes (so the recipient matches) but a different P1: the ECIES tag fails.
    certificate, key = ea_certificate("nistP256")
    cert_hash = hashlib.sha256(certificate).digest()
    sealed = encrypt(b"payload", certificate)
    with pytest.raises(VerificationError):
        decrypt(sealed.encoded, key, bytes(24) + cert_hash[-8:])


@pytest.mark.parametrize("curve", EE_CURVES)
def test_wrong_private_key_is_a_verification_error(curve: str) -> None:
    certificate, _ = ea_certificate(curve)
    sealed = encrypt(b"payload", certificate)
    with pytest.raises(VerificationError):
        decrypt(sealed.encoded, generate_key(curve), hashlib.sha256(certificate).digest())


def test_key_on_the_other_curve_is_a_verification_error() -> None:
    certificate, _ = ea_certificate("nistP256")
    sealed = encrypt(b"payload", certificate)
    with pytest.raises(VerificationError):
        decrypt(
            sealed.encoded, generate_key("brainpoolP256r1"), hashlib.sha256(certificate).digest()
        )


def test_ecies_refuses_384_bit_curves() -> None:
    with pytest.raises(PolicyError):
        ecies_wrap(bytes(16), generate_key("nistP384").public_key(), bytes(32))
    certificate, _ = ea_certificate("nistP256")
    sealed = encrypt(b"payload", certificate)
    with pytest.raises(VerificationError):
        decrypt(sealed.encoded, generate_key("nistP384"), hashlib.sha256(certificate).digest())


def test_unicast_profile_wants_exactly_one_recipient() -> None:
    certificate, key = ea_certificate("nistP256")
    sealed = encrypt(b"payload", certificate)
    doubled = _mutate(sealed.encoded, lambda c: c.update(recipients=c["recipients"] * 2))
    cert_hash = hashlib.sha256(certificate).digest()
    assert decrypt(doubled, key, cert_hash) == b"payload"
    with pytest.raises(ProfileError):
        decrypt(doubled, key, cert_hash, unicast=True)


def test_decrypt_refuses_a_message_that_is_not_encrypted() -> None:
    certificate, key = ea_certificate("nistP256")
    signer = generate_key("nistP256")
    signed = sign_data(
        {"data": unsecured(b"x")}, {"psid": 623, "generationTime": 1}, SoftwareSigner(signer)
    )
    with pytest.raises(ProfileError):
        decrypt(signed, key, hashlib.sha256(certificate).digest())
    with pytest.raises(EncodingError):
        decrypt(encrypt(b"x", certificate).encoded[:-3], key, hashlib.sha256(certificate).digest())


def test_encrypt_needs_a_certificate_with_an_encryption_key() -> None:
    signing_key = generate_key("nistP256")
    tbs = {
        "id": ("none", None),
        "cracaId": b"\x00\x00\x00",
        "crlSeries": 0,
        "validityPeriod": {"start": 0, "duration": ("hours", 1)},
        "verifyKeyIndicator": ("verificationKey", verification_key_value(signing_key.public_key())),
    }
    certificate = sign_certificate(tbs, SoftwareSigner(signing_key), issuer_certificate=None)
    with pytest.raises(ProfileError):
        encrypt(b"x", certificate.encoded)


# ------------------------------------------------------------------ pre-shared key (responses)


def test_psk_round_trip_and_recipient_id() -> None:
    aes_key = bytes(range(16))
    message = encrypt_with_key(b"response", aes_key)
    [(kind, recipient_id)] = decode("Ieee1609Dot2Data", message)["content"][1]["recipients"]
    assert kind == "pskRecipInfo"
    # IEEE 1609.2 §6.3.34: SHA-256 over COER SymmetricEncryptionKey (choice 0x80, 16 key bytes).
    assert (
        recipient_id == hashlib.sha256(b"\x80" + aes_key).digest()[-8:] == psk_recipient_id(aes_key)
    )
    assert decrypt_with_key(message, aes_key) == b"response"


def test_psk_wrong_key_is_a_verification_error() -> None:
    message = encrypt_with_key(b"response", bytes(16))
    with pytest.raises(VerificationError):
        decrypt_with_key(message, bytes(15) + b"\x01")


def test_response_reuses_the_request_key() -> None:
    certificate, key = ea_certificate("brainpoolP256r1")
    sealed = encrypt(b"request", certificate)
    _, aes_key = decrypt_for_certificate(sealed.encoded, key, certificate)
    assert decrypt_with_key(encrypt_with_key(b"response", aes_key), sealed.aes_key) == b"response"
    assert request_hash(sealed.encoded) == hashlib.sha256(sealed.encoded).digest()[:16]


# ------------------------------------------------------------------ enrolment request (POP)


def _pop(
    curve: str, *, its_id: bytes = b"ETSI-ITS-001"
) -> tuple[bytes, ec.EllipticCurvePrivateKey]:
    new_ec_key = generate_key(curve)
    inner = encode_inner_ec_request(
        its_id=its_id,
        verification_key=new_ec_key.public_key(),
        requested_subject_attributes=ATTRIBUTES,
    )
    return sign_enrolment_request_pop(
        inner, SoftwareSigner(new_ec_key), generation_time=GENERATION_TIME
    ), new_ec_key


@pytest.mark.parametrize("curve", EE_CURVES)
def test_enrolment_request_pop_round_trip(curve: str) -> None:
    signed, new_ec_key = _pop(curve)
    request = decode_enrolment_request(signed)
    assert request.its_id == b"ETSI-ITS-001"
    assert request.certificate_format == 1
    assert request.verification_key.public_numbers() == new_ec_key.public_key().public_numbers()
    assert request.encryption_key is None
    assert request.requested_subject_attributes == ATTRIBUTES


@pytest.mark.parametrize("curve", EE_CURVES)
def test_enrolment_request_travels_in_etsi102941_data_and_encryption(curve: str) -> None:
    certificate, ea_key = ea_certificate(curve)
    signed, _ = _pop(curve)
    data = encode_etsi102941_data(("enrolmentRequest", decode("Ieee1609Dot2Data", signed)))
    kind, content = decode_etsi102941_data(
        decrypt(encrypt(data, certificate).encoded, ea_key, hashlib.sha256(certificate).digest())
    )
    assert kind == "enrolmentRequest"
    assert decode_enrolment_request(encode("Ieee1609Dot2Data", content)).its_id == b"ETSI-ITS-001"


@pytest.mark.parametrize("curve", EE_CURVES)
def test_pop_over_different_bytes_is_a_verification_error(curve: str) -> None:
    signed, new_ec_key = _pop(curve)
    # Same key, same signature, but the InnerEcRequest now names another ITS-S.
    other_inner = encode_inner_ec_request(
        its_id=b"ETSI-ITS-002",
        verification_key=new_ec_key.public_key(),
        requested_subject_attributes=ATTRIBUTES,
    )

    def swap(content: dict[str, Any]) -> None:
        content["tbsData"]["payload"]["data"] = unsecured(other_inner)

    with pytest.raises(VerificationError):
        decode_enrolment_request(_mutate(signed, swap))


@pytest.mark.parametrize("curve", EE_CURVES)
def test_pop_signed_by_another_key_is_a_verification_error(curve: str) -> None:
    new_ec_key, intruder = generate_key(curve), generate_key(curve)
    inner = encode_inner_ec_request(
        its_id=b"ETSI-ITS-001",
        verification_key=new_ec_key.public_key(),
        requested_subject_attributes=ATTRIBUTES,
    )
    signed = sign_enrolment_request_pop(
        inner, SoftwareSigner(intruder), generation_time=GENERATION_TIME
    )
    with pytest.raises(VerificationError):
        decode_enrolment_request(signed)


def _signed_pop_with(
    header: dict[str, Any], signer_identifier: tuple[str, Any] = ("self", None)
) -> bytes:
    key = generate_key("nistP256")
    inner = encode_inner_ec_request(
        its_id=b"x", verification_key=key.public_key(), requested_subject_attributes=ATTRIBUTES
    )
    certificate = b"" if signer_identifier[0] == "self" else ea_certificate("nistP256")[0]
    return sign_data(
        {"data": unsecured(inner)},
        header,
        SoftwareSigner(key),
        signer_identifier=signer_identifier,
        signer_certificate=certificate,
    )


def test_pop_profile_wants_psid_623() -> None:
    with pytest.raises(ProfileError):
        decode_enrolment_request(_signed_pop_with({"psid": 36, "generationTime": GENERATION_TIME}))


def test_pop_profile_wants_generation_time() -> None:
    with pytest.raises(ProfileError):
        decode_enrolment_request(_signed_pop_with({"psid": PSID_CERTIFICATE_REQUEST}))


def test_pop_profile_wants_signer_self() -> None:
    signed = _signed_pop_with(
        {"psid": PSID_CERTIFICATE_REQUEST, "generationTime": GENERATION_TIME},
        signer_identifier=("digest", bytes(8)),
    )
    with pytest.raises(ProfileError):
        decode_enrolment_request(signed)


def test_pop_refuses_cert_issue_permissions() -> None:
    key = generate_key("nistP256")
    attributes = dict(ATTRIBUTES, certIssuePermissions=[{"subjectPermissions": ("all", None)}])
    with pytest.raises(ProfileError):
        encode_inner_ec_request(
            its_id=b"x", verification_key=key.public_key(), requested_subject_attributes=attributes
        )


def test_pop_refuses_a_message_that_is_not_signed() -> None:
    with pytest.raises(EncodingError):
        decode_enrolment_request(encode("Ieee1609Dot2Data", unsecured(b"x")))
    signed, _ = _pop("nistP256")
    with pytest.raises(EncodingError):
        decode_enrolment_request(signed[:-1])
    assert open_signed_data(signed).header_info["psid"] == PSID_CERTIFICATE_REQUEST
