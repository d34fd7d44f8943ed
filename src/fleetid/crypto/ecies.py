"""ECIES key wrapping and AES-128-CCM as IEEE 1609.2 and ETSI TS 103 097 use them.

IEEE 1609.2 §5.3.5 wraps a fresh 16-byte AES-CCM key for a recipient's ECIES key:

1. an ephemeral key pair (v, V) on the recipient's curve;
2. the shared secret Z = x(v·R), 32 bytes;
3. K1 ‖ K2 = KDF2-SHA-256(Z, P1), 16 + 32 bytes (KDF2 of IEEE 1363a is the ANSI X9.63 KDF);
4. C = k ⊕ K1 and T = HMAC-SHA-256(K2, C) truncated to 16 bytes (P2 is empty).

P1 is SHA-256 of the recipient information: for a certificate recipient (``certRecipInfo``)
ETSI TS 103 097 §5.3.5 sets P1 to SHA-256 of the COER recipient certificate; for a key given
in the signed data (``signedDataRecipInfo``/``rekRecipInfo``) it is SHA-256 of the empty string.
ECIES is defined only for NIST P-256 and brainpoolP256r1, even where signing uses 384-bit curves.

The payload cipher is AES-128-CCM with a 12-byte nonce, a 16-byte tag and no associated data
(IEEE 1609.2 §5.3.8).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESCCM
from cryptography.hazmat.primitives.kdf.x963kdf import X963KDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from fleetid.crypto.keys import new_private_key
from fleetid.crypto.symmetric import hmac_sha256
from fleetid.errors import EncodingError, PolicyError, VerificationError

__all__ = [
    "AES_KEY_LENGTH",
    "CCM_NONCE_LENGTH",
    "CCM_TAG_LENGTH",
    "ECIES_CURVES",
    "EMPTY_P1",
    "EcdhKey",
    "EciesWrappedKey",
    "ccm_decrypt",
    "ccm_encrypt",
    "ecies_unwrap",
    "ecies_wrap",
    "new_aes_key",
    "new_ccm_nonce",
]

AES_KEY_LENGTH = 16
CCM_NONCE_LENGTH = 12
CCM_TAG_LENGTH = 16
_MAC_LENGTH = 16
_KDF_LENGTH = AES_KEY_LENGTH + 32

#: Curves on which IEEE 1609.2 defines ECIES, by the name of their EncryptedDataEncryptionKey
#: alternative.
ECIES_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "eciesNistP256": ec.SECP256R1,
    "eciesBrainpoolP256r1": ec.BrainpoolP256R1,
}

#: P1 for a recipient that is not a certificate: SHA-256 of the empty string.
EMPTY_P1 = hashlib.sha256(b"").digest()


class EcdhKey(Protocol):
    """A private key that can do ECDH by reference (software, HSM or secure element)."""

    @property
    def curve(self) -> ec.EllipticCurve: ...

    def exchange(self, algorithm: ec.ECDH, peer_public_key: ec.EllipticCurvePublicKey) -> bytes: ...


@dataclass(frozen=True, kw_only=True)
class EciesWrappedKey:
    """An ``EciesP256EncryptedKey``: ephemeral point V (SEC 1 encoding), C and T."""

    ephemeral_point: bytes
    ciphertext: bytes
    tag: bytes


def _check_curve(curve: ec.EllipticCurve) -> None:
    if not any(isinstance(curve, allowed) for allowed in ECIES_CURVES.values()):
        raise PolicyError(
            f"ECIES is defined only on P-256 and brainpoolP256r1, not {curve.name} "
            "(IEEE 1609.2 §5.3.5, ETSI TS 103 097 §5.3.5)"
        )


def _check_p1(p1: bytes) -> None:
    if len(p1) != 32:
        raise ValueError("P1 is a SHA-256 hash (32 bytes)")


def _derive(shared_secret: bytes, p1: bytes) -> tuple[bytes, bytes]:
    okm = X963KDF(algorithm=hashes.SHA256(), length=_KDF_LENGTH, sharedinfo=p1).derive(
        shared_secret
    )
    return okm[:AES_KEY_LENGTH], okm[AES_KEY_LENGTH:]


def _mac(k2: bytes, data: bytes) -> bytes:
    return hmac_sha256(k2, data)[:_MAC_LENGTH]


def ecies_wrap(
    key: bytes,
    recipient: ec.EllipticCurvePublicKey,
    p1: bytes,
    *,
    ephemeral: ec.EllipticCurvePrivateKey | None = None,
) -> EciesWrappedKey:
    """Wrap a 16-byte AES key for ``recipient``; ``ephemeral`` is for test vectors only."""
    if len(key) != AES_KEY_LENGTH:
        raise ValueError("ECIES wraps a 16-byte AES-128 key")
    _check_p1(p1)
    _check_curve(recipient.curve)
    if ephemeral is None:
        ephemeral = new_private_key(recipient.curve)
    elif ephemeral.curve.name != recipient.curve.name:
        raise ValueError("the ephemeral key is on another curve than the recipient")
    k1, k2 = _derive(ephemeral.exchange(ec.ECDH(), recipient), p1)
    ciphertext = bytes(a ^ b for a, b in zip(key, k1, strict=True))
    point = ephemeral.public_key().public_bytes(Encoding.X962, PublicFormat.CompressedPoint)
    return EciesWrappedKey(ephemeral_point=point, ciphertext=ciphertext, tag=_mac(k2, ciphertext))


def ecies_unwrap(wrapped: EciesWrappedKey, recipient_key: EcdhKey, p1: bytes) -> bytes:
    """Recover the AES key; raise ``VerificationError`` when the tag does not verify."""
    _check_p1(p1)
    _check_curve(recipient_key.curve)
    if len(wrapped.ciphertext) != AES_KEY_LENGTH or len(wrapped.tag) != _MAC_LENGTH:
        raise EncodingError("an ECIES-wrapped key has a 16-byte C and a 16-byte T")
    try:
        ephemeral = ec.EllipticCurvePublicKey.from_encoded_point(
            recipient_key.curve, wrapped.ephemeral_point
        )
    except ValueError as exc:
        raise VerificationError(
            f"the ephemeral ECIES point is not on the recipient's curve {recipient_key.curve.name}"
        ) from exc
    k1, k2 = _derive(recipient_key.exchange(ec.ECDH(), ephemeral), p1)
    if not hmac.compare_digest(_mac(k2, wrapped.ciphertext), wrapped.tag):
        raise VerificationError("ECIES tag does not verify (wrong recipient key or P1)")
    return bytes(a ^ b for a, b in zip(wrapped.ciphertext, k1, strict=True))


def ccm_encrypt(key: bytes, nonce: bytes, plaintext: bytes) -> bytes:
    """AES-128-CCM (12-byte nonce, 16-byte tag, no AAD): the ciphertext followed by the tag."""
    _check_ccm(key, nonce)
    return AESCCM(key, tag_length=CCM_TAG_LENGTH).encrypt(nonce, plaintext, None)


def ccm_decrypt(key: bytes, nonce: bytes, ciphertext: bytes) -> bytes:
    """Open AES-128-CCM; raise ``VerificationError`` when the tag does not verify."""
    _check_ccm(key, nonce)
    if len(ciphertext) < CCM_TAG_LENGTH:
        raise VerificationError("AES-CCM ciphertext shorter than its tag")
    try:
        return AESCCM(key, tag_length=CCM_TAG_LENGTH).decrypt(nonce, ciphertext, None)
    except InvalidTag as exc:
        raise VerificationError("AES-CCM tag does not verify") from exc


def _check_ccm(key: bytes, nonce: bytes) -> None:
    if len(key) != AES_KEY_LENGTH:
        raise ValueError("IEEE 1609.2 AES-CCM uses a 16-byte key")
    if len(nonce) != CCM_NONCE_LENGTH:
        raise ValueError("IEEE 1609.2 AES-CCM uses a 12-byte nonce")


def new_aes_key() -> bytes:
    """A fresh AES-128 key from the operating system's CSPRNG."""
    return os.urandom(AES_KEY_LENGTH)


def new_ccm_nonce() -> bytes:
    """A fresh random 12-byte nonce; a key is never used twice with the same nonce."""
    return os.urandom(CCM_NONCE_LENGTH)
