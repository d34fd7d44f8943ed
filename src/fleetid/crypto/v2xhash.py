"""IEEE 1609.2 hashing: the data-to-sign rule and the hash that goes with a key size.

IEEE 1609.2 §5.3.1 signs ``H(H(tbs) ‖ H(signer))``: tbs is the COER encoding of the
ToBeSignedData (or ToBeSignedCertificate), signer the COER encoding of the signer's certificate,
or the empty string when the signer is ``self``. ECDSA hashes its message once more, so the
ECDSA message is ``H(tbs) ‖ H(signer)``. H is SHA-256 for 256-bit keys and SHA-384 for 384-bit
keys (§5.3.1, ETSI TS 103 097 §5.3.1).
"""

from __future__ import annotations

import hashlib
from typing import Literal

__all__ = ["HashName", "data_to_sign_digest", "digest", "hash_for_key_size", "signing_input"]

HashName = Literal["sha256", "sha384"]


def hash_for_key_size(key_size: int) -> HashName:
    """SHA-384 for 384-bit curves, SHA-256 for 256-bit ones (IEEE 1609.2 §5.3.1)."""
    if key_size == 256:
        return "sha256"
    if key_size == 384:
        return "sha384"
    raise ValueError(f"IEEE 1609.2 defines no hash for {key_size}-bit keys")


def digest(data: bytes, hash_name: HashName) -> bytes:
    return hashlib.new(hash_name, data).digest()


def signing_input(tbs: bytes, signer: bytes, hash_name: HashName) -> bytes:
    """The ECDSA message ``H(tbs) ‖ H(signer)``; ``signer`` is b"" for a self-signed item."""
    return digest(tbs, hash_name) + digest(signer, hash_name)


def data_to_sign_digest(tbs: bytes, signer: bytes, hash_name: HashName) -> bytes:
    """``H(H(tbs) ‖ H(signer))``, the value ECDSA actually signs."""
    return digest(signing_input(tbs, signer, hash_name), hash_name)
