"""The package seal: ECDH-ES, HKDF-SHA-256, AES-256-GCM, checked against an
independent HKDF (RFC 5869 written out with ``hmac``, itself checked on RFC 5869 test case 1)."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fleetid.crypto.keys import new_private_key
from fleetid.crypto.package_seal import NONCE_LENGTH, open_sealed, private_scalar, seal_package
from fleetid.errors import VerificationError

CONTEXT = b"\x11" * 16


def _hkdf_sha256(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 §2.2-2.3, written out: the independent reference."""
    prk = hmac.new(salt or bytes(32), ikm, hashlib.sha256).digest()
    out, block = b"", b""
    for counter in range(1, -(-length // 32) + 1):
        block = hmac.new(prk, block + info + bytes((counter,)), hashlib.sha256).digest()
        out += block
    return out[:length]


def test_the_reference_hkdf_meets_rfc5869_test_case_1() -> None:
    okm = _hkdf_sha256(
        bytes.fromhex("0b" * 22),
        bytes.fromhex("000102030405060708090a0b0c"),
        bytes.fromhex("f0f1f2f3f4f5f6f7f8f9"),
        42,
    )
    assert okm.hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1(), ec.BrainpoolP256R1()])
def test_the_recipient_opens_with_the_reference_derivation(curve: ec.EllipticCurve) -> None:
    recipient = new_private_key(curve)
    sealed = seal_package(recipient.public_key(), b"the package", CONTEXT)
    peer = ec.EllipticCurvePublicKey.from_encoded_point(curve, sealed.ephemeral_point)
    z = recipient.exchange(ec.ECDH(), peer)
    key = _hkdf_sha256(z, b"", b"fleetid bound package v1" + CONTEXT, 32)
    assert AESGCM(key).decrypt(sealed.nonce, sealed.ciphertext, CONTEXT) == b"the package"
    assert open_sealed(z, sealed.nonce, sealed.ciphertext, CONTEXT) == b"the package"


def test_every_seal_has_its_own_one_time_key_and_nonce() -> None:
    recipient = new_private_key().public_key()
    a, b = (seal_package(recipient, b"same", CONTEXT) for _ in range(2))
    assert a.ephemeral_point != b.ephemeral_point and a.nonce != b.nonce
    assert len(a.nonce) == NONCE_LENGTH


def test_another_key_another_context_or_a_changed_byte_does_not_open() -> None:
    recipient, stranger = new_private_key(), new_private_key()
    sealed = seal_package(recipient.public_key(), b"secret part", CONTEXT)
    peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), sealed.ephemeral_point)
    z = recipient.exchange(ec.ECDH(), peer)
    with pytest.raises(VerificationError):
        open_sealed(stranger.exchange(ec.ECDH(), peer), sealed.nonce, sealed.ciphertext, CONTEXT)
    with pytest.raises(VerificationError):
        open_sealed(z, sealed.nonce, sealed.ciphertext, b"\x12" * 16)
    changed = sealed.ciphertext[:3] + bytes([sealed.ciphertext[3] ^ 0x80]) + sealed.ciphertext[4:]
    with pytest.raises(VerificationError):
        open_sealed(z, sealed.nonce, changed, CONTEXT)
    with pytest.raises(VerificationError, match="nonce"):
        open_sealed(z, sealed.nonce[:8], sealed.ciphertext, CONTEXT)


def test_private_scalar_is_the_key_at_the_curve_s_length() -> None:
    key = new_private_key(ec.SECP384R1())
    scalar = private_scalar(key)
    assert len(scalar) == 48
    assert int.from_bytes(scalar, "big") == key.private_numbers().private_value
