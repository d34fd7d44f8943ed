"""Linkage values (IEEE 1609.2 §5.1.3.4 and IEEE 1609.2.1 §9.4, the SCMS construction).

Each of two linkage authorities, LA1 and LA2, keeps for every device chain a secret 128-bit
*linkage seed* per period i, starting from a random ls(0) and stepping by a hash chain::

    ls(i) = first 128 bits of SHA-256(la_id ‖ ls(i-1) ‖ 0^112)

From the seed of period i it derives the *pre-linkage value* of certificate j::

    plv(i, j) = first 72 bits of AES_ls(i)(la_id ‖ j ‖ 0^80) ⊕ (la_id ‖ j ‖ 0^80)

la_id is the LA's 16-bit identifier and j a 32-bit index. The pseudonym CA puts
``lv(i, j) = plv1(i, j) ⊕ plv2(i, j)`` into certificate (i, j). Neither LA alone, nor the CA
(which sees only the two pre-linkage values of each certificate, encrypted to it), can tell
which certificates share a device; revealing ls1(i) and ls2(i) of one device links all of its
certificates from period i on, and none before (the hash chain runs one way).
"""

from __future__ import annotations

import hashlib
from typing import Final

from fleetid.crypto.symmetric import aes_encrypt_block
from fleetid.errors import EncodingError

__all__ = [
    "LINKAGE_SEED_SIZE",
    "LINKAGE_VALUE_SIZE",
    "linkage_seed_at",
    "linkage_value",
    "next_linkage_seed",
    "pre_linkage_value",
]

LINKAGE_SEED_SIZE: Final = 16
LINKAGE_VALUE_SIZE: Final = 9  # 1609.2 LinkageValue: OCTET STRING (SIZE(9))
_LA_ID_SIZE: Final = 2


def _check(seed: bytes, la_id: bytes) -> None:
    if len(seed) != LINKAGE_SEED_SIZE:
        raise EncodingError(f"a linkage seed is {LINKAGE_SEED_SIZE} bytes, got {len(seed)}")
    if len(la_id) != _LA_ID_SIZE:
        raise EncodingError(f"an LA identifier is {_LA_ID_SIZE} bytes, got {len(la_id)}")


def next_linkage_seed(seed: bytes, la_id: bytes) -> bytes:
    """ls(i) from ls(i-1): the first 16 bytes of SHA-256(la_id ‖ ls(i-1) ‖ 0^112)."""
    _check(seed, la_id)
    return hashlib.sha256(la_id + seed + bytes(14)).digest()[:LINKAGE_SEED_SIZE]


def linkage_seed_at(seed: bytes, la_id: bytes, steps: int) -> bytes:
    """ls(i + steps) from ls(i): the hash chain walked ``steps`` times forward."""
    if steps < 0:
        raise EncodingError("the linkage hash chain runs forward only")
    for _ in range(steps):
        seed = next_linkage_seed(seed, la_id)
    _check(seed, la_id)
    return seed


def pre_linkage_value(seed: bytes, la_id: bytes, j: int) -> bytes:
    """plv(i, j) under ls(i) = ``seed``: 9 bytes of AES_seed(la_id ‖ j ‖ 0^80) ⊕ its input."""
    _check(seed, la_id)
    if not 0 <= j < 1 << 32:
        raise EncodingError(f"j is a 32-bit unsigned integer, got {j}")
    block = la_id + j.to_bytes(4, "big") + bytes(10)
    enciphered = aes_encrypt_block(seed, block)
    return bytes(a ^ b for a, b in zip(enciphered[:LINKAGE_VALUE_SIZE], block, strict=False))


def linkage_value(plv1: bytes, plv2: bytes) -> bytes:
    """lv(i, j) = plv1(i, j) ⊕ plv2(i, j), the value a pseudonym certificate carries."""
    if len(plv1) != LINKAGE_VALUE_SIZE or len(plv2) != LINKAGE_VALUE_SIZE:
        raise EncodingError(f"pre-linkage values are {LINKAGE_VALUE_SIZE} bytes each")
    return bytes(a ^ b for a, b in zip(plv1, plv2, strict=True))
