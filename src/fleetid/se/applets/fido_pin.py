"""The card half of ClientPIN with PIN/UV auth protocol 2 (CTAP 2.1 §6.5.7, §6.5.5).

Protocol 2: the platform and the card agree on Z (the X coordinate of an ECDH on P-256, §6.5.7
``ecdh``); the shared secret is HKDF-SHA-256 (salt 32 zero bytes) of Z with info
"CTAP2 HMAC key" then "CTAP2 AES key"; ``encrypt`` is a random 16-byte IV ‖ AES-256-CBC without
padding, ``authenticate`` HMAC-SHA-256 (all 32 bytes). A pinUvAuthToken is 32 random bytes, made
anew on each getPinUvAuthToken*, and authenticates with ``authenticate(token, message)``.

The PIN itself is kept as LEFT(SHA-256(PIN), 16) with a persistent retry counter (8 at most,
§6.5.2.1): a wrong PIN costs one retry before it is compared, three wrong in one power cycle
block PIN use until the next one (PIN_AUTH_BLOCKED), none left blocks it for good (PIN_BLOCKED).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from fido2.ctap import CtapError

__all__ = [
    "MAX_PIN_RETRIES",
    "PERMISSION_GA",
    "PERMISSION_MC",
    "PinProtocolTwo",
    "PinToken",
    "authenticate",
    "ctap_error",
]

ERR = CtapError.ERR
MAX_PIN_RETRIES = 8
_CONSECUTIVE_MISMATCHES = 3
# Permissions (§6.5.5.7): makeCredential and getAssertion are what this card grants.
PERMISSION_MC = 0x01
PERMISSION_GA = 0x02
_SUPPORTED_PERMISSIONS = PERMISSION_MC | PERMISSION_GA
_MIN_PIN_LENGTH = 4
_PADDED_PIN = 64


def ctap_error(code: ERR) -> CtapError:
    """The error a CTAP command answers with (its status byte, §8.2)."""
    return CtapError(code)


def authenticate(key: bytes, message: bytes) -> bytes:
    """Protocol 2 ``authenticate`` (§6.5.7): HMAC-SHA-256, not truncated."""
    return hmac.new(key, message, hashlib.sha256).digest()


def _hkdf(z: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=bytes(32), info=info).derive(z)


@dataclass(kw_only=True)
class PinToken:
    """The current pinUvAuthToken (volatile) and what it may be used for."""

    token: bytes
    permissions: int
    rp_id: str | None

    def allows(self, permission: int, rp_id: str) -> bool:
        """Whether the token carries ``permission`` for ``rp_id``; a token without an RP ID
        is bound to the first one it is used with (§6.5.5.7 "pinUvAuthToken usage")."""
        if not self.permissions & permission:
            return False
        if self.rp_id is None:
            self.rp_id = rp_id
        return self.rp_id == rp_id


@dataclass(frozen=True, slots=True)
class _Shared:
    hmac_key: bytes
    aes_key: bytes


class PinProtocolTwo:
    """The card's key agreement key, its power-cycle counters and the current token."""

    def __init__(self, random: Callable[[int], bytes] = os.urandom) -> None:
        self._random = random
        self._key: ec.EllipticCurvePrivateKey | None = None
        self._mismatches = 0
        self.token: PinToken | None = None

    def power_cycle(self) -> None:
        """Forget everything volatile: key agreement key, mismatch count, token."""
        self._key = None
        self._mismatches = 0
        self.token = None

    def key_agreement(self) -> dict[int, object]:
        """getKeyAgreement (§6.5.5.4): the card's COSE_Key, alg -25 (ECDH-ES+HKDF-256)."""
        numbers = self._agreement_key().public_key().public_numbers()
        return {
            1: 2,
            3: -25,
            -1: 1,
            -2: numbers.x.to_bytes(32, "big"),
            -3: numbers.y.to_bytes(32, "big"),
        }

    def _agreement_key(self) -> ec.EllipticCurvePrivateKey:
        if self._key is None:
            self._key = ec.generate_private_key(ec.SECP256R1())
        return self._key

    def shared(self, peer: object) -> _Shared:
        """The shared secret with the platform's COSE_Key ``peer`` (§6.5.7 ``ecdh``)."""
        if not isinstance(peer, dict):
            raise ctap_error(ERR.MISSING_PARAMETER)
        x, y = peer.get(-2), peer.get(-3)
        if (
            peer.get(1) != 2
            or peer.get(-1) != 1
            or not isinstance(x, bytes)
            or not isinstance(y, bytes)
        ):
            raise ctap_error(ERR.INVALID_PARAMETER)
        try:
            point = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + x + y)
        except ValueError:
            raise ctap_error(ERR.INVALID_PARAMETER) from None
        z = self._agreement_key().exchange(ec.ECDH(), point)
        return _Shared(_hkdf(z, b"CTAP2 HMAC key"), _hkdf(z, b"CTAP2 AES key"))

    def encrypt(self, shared: _Shared, plaintext: bytes) -> bytes:
        iv = self._random(16)
        encryptor = Cipher(algorithms.AES(shared.aes_key), modes.CBC(iv)).encryptor()
        return iv + encryptor.update(plaintext) + encryptor.finalize()

    @staticmethod
    def decrypt(shared: _Shared, ciphertext: bytes) -> bytes:
        if len(ciphertext) < 32 or len(ciphertext) % 16:
            raise ctap_error(ERR.INVALID_PARAMETER)
        iv, body = ciphertext[:16], ciphertext[16:]
        decryptor = Cipher(algorithms.AES(shared.aes_key), modes.CBC(iv)).decryptor()
        return decryptor.update(body) + decryptor.finalize()

    @staticmethod
    def verify(key: bytes, message: bytes, signature: object) -> None:
        """Refuse (PIN_AUTH_INVALID) a pinUvAuthParam that is not ``authenticate(key, message)``."""
        if not isinstance(signature, bytes) or not hmac.compare_digest(
            authenticate(key, message), signature
        ):
            raise ctap_error(ERR.PIN_AUTH_INVALID)

    # --- PIN checks (§6.5.5.5-6.5.5.7) ---------------------------------------------------------

    def check_pin_hash(
        self,
        shared: _Shared,
        pin_hash_enc: object,
        *,
        stored: bytes,
        retries: int,
        set_retries: Callable[[int], None],
    ) -> None:
        """Decrement the retry counter (persisted before comparing), compare the decrypted
        pinHashEnc with the stored hash; on a match restore the counter."""
        if not isinstance(pin_hash_enc, bytes):
            raise ctap_error(ERR.MISSING_PARAMETER)
        if retries <= 0:
            raise ctap_error(ERR.PIN_BLOCKED)
        if self._mismatches >= _CONSECUTIVE_MISMATCHES:
            raise ctap_error(ERR.PIN_AUTH_BLOCKED)
        set_retries(retries - 1)
        if len(pin_hash_enc) != 32 or not hmac.compare_digest(
            self.decrypt(shared, pin_hash_enc), stored
        ):
            self._key = None  # §6.5.5.5: a new key agreement key after a mismatch
            self._mismatches += 1
            if retries - 1 <= 0:
                raise ctap_error(ERR.PIN_BLOCKED)
            if self._mismatches >= _CONSECUTIVE_MISMATCHES:
                raise ctap_error(ERR.PIN_AUTH_BLOCKED)
            raise ctap_error(ERR.PIN_INVALID)
        self._mismatches = 0
        set_retries(MAX_PIN_RETRIES)

    def new_pin_hash(self, shared: _Shared, new_pin_enc: object) -> bytes:
        """Decrypt newPinEnc (a 64-byte padded PIN), check the policy, return its stored form."""
        if not isinstance(new_pin_enc, bytes):
            raise ctap_error(ERR.MISSING_PARAMETER)
        if len(new_pin_enc) != 16 + _PADDED_PIN:
            raise ctap_error(ERR.INVALID_PARAMETER)
        padded = self.decrypt(shared, new_pin_enc)
        pin = padded.rstrip(b"\x00")
        try:
            length = len(pin.decode())
        except UnicodeDecodeError:
            raise ctap_error(ERR.PIN_POLICY_VIOLATION) from None
        if length < _MIN_PIN_LENGTH:
            raise ctap_error(ERR.PIN_POLICY_VIOLATION)
        return hashlib.sha256(pin).digest()[:16]

    def issue_token(self, permissions: int, rp_id: str | None) -> bytes:
        """A fresh pinUvAuthToken with ``permissions`` (§6.5.5.7); earlier tokens stop working."""
        if permissions == 0:
            raise ctap_error(ERR.INVALID_PARAMETER)
        if permissions & ~_SUPPORTED_PERMISSIONS:
            raise ctap_error(ERR.UNAUTHORIZED_PERMISSION)
        token = self._random(32)
        self.token = PinToken(token=token, permissions=permissions, rp_id=rp_id)
        return token
