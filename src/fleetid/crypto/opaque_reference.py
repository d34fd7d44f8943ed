"""References only their maker can read: an authority's pointer to its own record, handed to
another authority that must not learn what it points to.

The butterfly pipeline passes such pointers along: each linkage authority names the device
chain behind a pre-linkage value, and the registration authority the device behind a
certificate request, so that the pseudonym CA can later say "the chain behind this certificate"
without learning which chain it is. Each reference is ``nonce ‖ AES-128-CCM(key, nonce, value)``
under a key only the maker holds, with a fresh random nonce: two references to the same record
look unrelated to anyone else, and a forged or altered one does not open.
"""

from __future__ import annotations

from fleetid.crypto.ecies import (
    AES_KEY_LENGTH,
    CCM_NONCE_LENGTH,
    ccm_decrypt,
    ccm_encrypt,
    new_ccm_nonce,
)
from fleetid.errors import EncodingError

__all__ = ["open_reference", "seal_reference"]


def seal_reference(key: bytes, value: bytes) -> bytes:
    """A fresh, unlinkable reference to ``value`` that only ``key`` opens."""
    if len(key) != AES_KEY_LENGTH:
        raise ValueError("a reference key is AES-128 (16 bytes)")
    nonce = new_ccm_nonce()
    return nonce + ccm_encrypt(key, nonce, value)


def open_reference(key: bytes, reference: bytes) -> bytes:
    """The value behind a reference; ``VerificationError`` if it is not one of ``key``'s."""
    if len(reference) <= CCM_NONCE_LENGTH:
        raise EncodingError("a reference is a nonce and a CCM ciphertext")
    return ccm_decrypt(key, reference[:CCM_NONCE_LENGTH], reference[CCM_NONCE_LENGTH:])
