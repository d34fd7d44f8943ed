"""Butterfly key expansion (IEEE 1609.2.1 §9.3, the CAMP construction).

A device gives the registration authority a *caterpillar* public key A and an AES-128 *expansion
key* k. For each period i and index j, anyone holding both computes the *cocoon* public key
``B(i, j) = A + f_k(x)·G``, and only the device, which holds a, the private key
``b(i, j) = a + f_k(x) mod n``. So one request yields a whole batch of unlinkable public keys,
without a round trip per key. The pseudonym CA then randomises each cocoon key once more (an
explicit certificate's key ``B + c·G``, or an implicit certificate's reconstruction point), so the
RA, which knows A and k, cannot recognise the certificates either.

The expansion function, for a 256-bit curve of order n (§9.3.2)::

    x      = 0^32 ‖ i ‖ j ‖ 0^32   (signing keys)     1^32 ‖ i ‖ j ‖ 0^32   (encryption keys)
    f_k(x) = (AES_k(x+1) ⊕ (x+1)) ‖ (AES_k(x+2) ⊕ (x+2)) ‖ (AES_k(x+3) ⊕ (x+3))   mod n

i and j are 32-bit unsigned integers, x a 128-bit big-endian integer and the 384-bit string an
integer reduced mod n (the bias is below 2^-128). In the *original* variant a device has two
caterpillar key pairs and two expansion keys, one for signing keys (``encryption=False``) and
one for the keys its responses are encrypted to (``encryption=True``); in the *unified* variant
(§9.3.4) one signing caterpillar serves both, and the cocoon signing key is also the response
encryption key. Both variants use only the functions below.
"""

from __future__ import annotations

from typing import Final

from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.crypto import ecpoint
from fleetid.crypto.symmetric import aes_encrypt_blocks
from fleetid.errors import EncodingError

__all__ = [
    "BUTTERFLY_CURVES",
    "expand_private",
    "expand_public",
    "expansion_input",
    "expansion_integer",
]

#: The curves butterfly keys are defined for (IEEE 1609.2.1 §9.3: 256-bit curves).
BUTTERFLY_CURVES: Final[tuple[ec.EllipticCurve, ...]] = (ec.SECP256R1(), ec.BrainpoolP256R1())
_CURVE_NAMES: Final = frozenset(curve.name for curve in BUTTERFLY_CURVES)
_U32: Final = 1 << 32
_ENCRYPTION_PREFIX: Final = 0xFFFFFFFF


def _check_curve(curve: ec.EllipticCurve) -> None:
    if curve.name not in _CURVE_NAMES:
        raise EncodingError(f"butterfly keys are defined on 256-bit curves, not {curve.name}")


def expansion_input(i: int, j: int, *, encryption: bool = False) -> int:
    """x = (0^32 or 1^32) ‖ i ‖ j ‖ 0^32, as a 128-bit integer (§9.3.2)."""
    if not (0 <= i < _U32 and 0 <= j < _U32):
        raise EncodingError(f"i and j are 32-bit unsigned integers, got i={i}, j={j}")
    prefix = _ENCRYPTION_PREFIX if encryption else 0
    return prefix << 96 | i << 64 | j << 32


def expansion_integer(
    key: bytes,
    i: int,
    j: int,
    *,
    encryption: bool = False,
    curve: ec.EllipticCurve = BUTTERFLY_CURVES[0],
) -> int:
    """f_k(x) mod n for the expansion key ``key`` (AES-128) and indices (i, j)."""
    _check_curve(curve)
    if len(key) != 16:
        raise EncodingError(f"a butterfly expansion key is AES-128 (16 bytes), got {len(key)}")
    x = expansion_input(i, j, encryption=encryption)
    # x + 1, x + 2, x + 3 never carry out of the low 32 zero bits.
    counters = b"".join((x + step).to_bytes(16, "big") for step in (1, 2, 3))
    enciphered = aes_encrypt_blocks(key, counters)
    string = int.from_bytes(enciphered, "big") ^ int.from_bytes(counters, "big")
    return string % ecpoint.group_order(curve)


def expand_private(
    seed: int,
    key: bytes,
    i: int,
    j: int,
    *,
    encryption: bool = False,
    curve: ec.EllipticCurve = BUTTERFLY_CURVES[0],
) -> int:
    """The cocoon private key ``a + f_k(x) mod n`` of caterpillar private key ``seed``."""
    n = ecpoint.group_order(curve)
    if not 0 < seed < n:
        raise EncodingError("a caterpillar private key is an integer in [1, n-1]")
    expanded = (seed + expansion_integer(key, i, j, encryption=encryption, curve=curve)) % n
    if expanded == 0:  # a + f = n: probability 2^-256, but no key may be 0
        raise EncodingError("the expanded private key is 0 mod n")
    return expanded


def expand_public(
    seed: ec.EllipticCurvePublicKey,
    key: bytes,
    i: int,
    j: int,
    *,
    encryption: bool = False,
) -> ec.EllipticCurvePublicKey:
    """The cocoon public key ``A + f_k(x)·G`` of caterpillar public key ``seed``."""
    _check_curve(seed.curve)
    f = expansion_integer(key, i, j, encryption=encryption, curve=seed.curve)
    return ecpoint.add_base_multiple(seed, f)
