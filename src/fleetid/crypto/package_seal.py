"""How a credential package is bound to one device: ECDH-ES, HKDF-SHA-256, AES-256-GCM.

The preparation service makes a one-time key pair (otPK.DP in SGP.22 §2.6.6 terms) on the curve
of the device's one-time key-agreement key (otPK.EUICC, generated in the secure element), and:

1. Z = x(d_DP · otPK.EUICC), the ECDH shared secret (SEC 1 v2 §3.3.1);
2. K = HKDF-SHA-256(Z, salt none, info = "fleetid bound package v1" ‖ context), 32 bytes (RFC 5869);
3. C = AES-256-GCM(K, nonce, plaintext, associated data = context) with a fresh 12-byte nonce and
   the 16-byte tag (NIST SP 800-38D).

``context`` is the download's transaction ID, so every download has its own session key even for
the same pair of keys. The card runs steps 1 and 2 with the private half of otPK.EUICC, which
never leaves it (``open_sealed`` is the card's half); the host sees only C.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fleetid.crypto.keys import ecdh_shared_secret, new_private_key
from fleetid.errors import VerificationError

__all__ = [
    "NONCE_LENGTH",
    "SealedPackage",
    "open_sealed",
    "private_scalar",
    "seal_package",
]

NONCE_LENGTH: Final = 12
_INFO: Final = b"fleetid bound package v1"


@dataclass(frozen=True, slots=True, kw_only=True)
class SealedPackage:
    """The service's one-time public point (``04 X Y``), the nonce and the ciphertext with tag."""

    ephemeral_point: bytes
    nonce: bytes
    ciphertext: bytes = field(repr=False)


def _session_key(shared_secret: bytes, context: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO + context).derive(
        shared_secret
    )


def seal_package(
    recipient: ec.EllipticCurvePublicKey, plaintext: bytes, context: bytes
) -> SealedPackage:
    """Encrypt ``plaintext`` to ``recipient`` under a fresh one-time key (steps 1-3)."""
    ephemeral = new_private_key(recipient.curve)
    key = _session_key(ecdh_shared_secret(ephemeral, recipient), context)
    nonce = os.urandom(NONCE_LENGTH)
    return SealedPackage(
        ephemeral_point=ephemeral.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        ),
        nonce=nonce,
        ciphertext=AESGCM(key).encrypt(nonce, plaintext, context),
    )


def open_sealed(shared_secret: bytes, nonce: bytes, ciphertext: bytes, context: bytes) -> bytes:
    """The recipient's half: derive the session key from Z and open C; raises
    ``VerificationError`` when the tag does not verify (another key, a changed byte)."""
    if len(nonce) != NONCE_LENGTH:
        raise VerificationError(f"the nonce has {len(nonce)} bytes, not {NONCE_LENGTH}")
    try:
        return AESGCM(_session_key(shared_secret, context)).decrypt(nonce, ciphertext, context)
    except InvalidTag:
        raise VerificationError("the package does not open under this key") from None


def private_scalar(key: ec.EllipticCurvePrivateKey) -> bytes:
    """The private scalar, big-endian, as long as the curve's order (what a package carries to
    the card for a key it installs; the caller discards the key object after sealing)."""
    size = (key.curve.key_size + 7) // 8
    return key.private_numbers().private_value.to_bytes(size, "big")
