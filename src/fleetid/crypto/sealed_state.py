"""Secrets at rest in an authority's database: AES-256-GCM under a key from its key store.

The butterfly authorities keep secrets in their tables (a linkage authority's seeds ls(0) and
ls(i), its LA-CA and reference keys; the pseudonym CA's copies of the LA-CA keys). Each is
sealed as ``nonce (12) ‖ AES-256-GCM(key, nonce, value, context)``, where ``context`` names the
row (owner, table, primary key), so a sealed value moved to another row does not open. The key
is ``HKDF-SHA256(d, info="fleetid butterfly state v1")`` of the authority's own private key d,
which lives in its passphrase-protected key store (``fleetid.authority.v2x.on_disk``): whoever
holds only the database holds no seed and no key.
"""

from __future__ import annotations

import os
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fleetid.errors import EncodingError, VerificationError

__all__ = ["StateSealer"]

_INFO: Final = b"fleetid butterfly state v1"
_NONCE: Final = 12


class StateSealer:
    """Seals and opens one authority's secrets; the key never leaves this object."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("a state key is AES-256 (32 bytes)")
        self.__aead = AESGCM(key)

    @classmethod
    def for_key(cls, private_key: ec.EllipticCurvePrivateKey) -> StateSealer:
        """The sealer keyed by HKDF of the authority's key-store key."""
        size = (private_key.curve.key_size + 7) // 8
        secret = private_key.private_numbers().private_value.to_bytes(size, "big")
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret)
        return cls(derived)

    def __repr__(self) -> str:
        return "StateSealer(<key hidden>)"

    def seal(self, value: bytes, context: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + self.__aead.encrypt(nonce, value, context)

    def open(self, sealed: bytes, context: bytes) -> bytes:
        """The value; ``VerificationError`` under another key, for another row or if altered."""
        if len(sealed) < _NONCE + 16:
            raise EncodingError("a sealed value is a nonce, a ciphertext and a tag")
        try:
            return self.__aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], context)
        except InvalidTag:
            raise VerificationError("a sealed value does not open under this key") from None
