"""The pseudonym CA's and the device's halves of butterfly issuance (IEEE 1609.2.1 §9.3).

The registration authority turns a device's caterpillar key into one cocoon key B(i, j) per
certificate (``fleetid.crypto.butterfly``). The pseudonym CA must then randomise every cocoon key
once more, or the RA, which knows the caterpillar key and the expansion key, would recognise
the certificate's key:

* explicit certificate: the CA draws c, certifies ``B + c·G`` and sends c, encrypted to the
  device; the device's private key is ``b + c``;
* implicit certificate (ECQV, ``fleetid.crypto.ecqv``): the CA draws k, puts the reconstruction
  point ``B + k·G`` in the certificate and sends ``r = e·k + d_CA``; the device's private key is
  ``e·b + r``.

c and k are secrets of the CA for the time of one issuance; the CA's own private key stays in
``ImplicitIssuingKey`` (a software key: ECQV needs d_CA as an integer, which no HSM here offers).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.crypto import ecpoint
from fleetid.crypto.butterfly import expand_private
from fleetid.crypto.ecqv import private_key_reconstruction_value, reconstruct_private
from fleetid.crypto.keys import new_private_key
from fleetid.crypto.signer import Signer, SoftwareSigner
from fleetid.errors import EncodingError, VerificationError

__all__ = [
    "CaterpillarKey",
    "ImplicitIssuingKey",
    "RandomisedKey",
    "check_key_matches",
    "explicit_private_key",
    "implicit_private_key",
    "randomise_cocoon_key",
]


@dataclass(frozen=True, kw_only=True)
class RandomisedKey:
    """A cocoon key moved by a fresh secret: ``point = B + secret·G``."""

    secret: int = field(repr=False)
    point: ec.EllipticCurvePublicKey


def randomise_cocoon_key(cocoon: ec.EllipticCurvePublicKey) -> RandomisedKey:
    """Draw a secret s in [1, n-1] and return (s, B + s·G)."""
    n = ecpoint.group_order(cocoon.curve)
    secret = 1 + secrets.randbelow(n - 1)
    return RandomisedKey(secret=secret, point=ecpoint.add_base_multiple(cocoon, secret))


def explicit_private_key(cocoon_private: int, c: int, curve: ec.EllipticCurve) -> int:
    """The device's key of an explicit butterfly certificate: ``b + c mod n``."""
    n = ecpoint.group_order(curve)
    if not (0 < cocoon_private < n and 0 <= c < n):
        raise EncodingError("the cocoon key and c are integers in [1, n-1] and [0, n-1]")
    key = (cocoon_private + c) % n
    if key == 0:
        raise EncodingError("the pseudonym private key is 0 mod n")
    return key


def check_key_matches(
    held: ec.EllipticCurvePublicKey, certified: ec.EllipticCurvePublicKey
) -> None:
    """Raise ``VerificationError`` unless the public half of the key the device rebuilt is the
    certificate's key (the device's last check)."""
    if held.public_numbers() != certified.public_numbers():
        raise VerificationError("the reconstructed private key does not match the certificate")


class ImplicitIssuingKey:
    """A pseudonym CA's software key used for ECQV: it adds d_CA and never hands it out."""

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        self._key = key

    @property
    def curve(self) -> ec.EllipticCurve:
        return self._key.curve

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._key.public_key()

    def reconstruction_value(self, e: int, k: int) -> int:
        """r = e·k + d_CA mod n (SEC 4 §3.4)."""
        d_ca = self._key.private_numbers().private_value
        return private_key_reconstruction_value(e, k, d_ca, self._key.curve)


def implicit_private_key(e: int, cocoon_private: int, r: int, curve: ec.EllipticCurve) -> int:
    """The device's key of an implicit butterfly certificate: ``e·b + r mod n``."""
    return reconstruct_private(e, cocoon_private, r, curve)


class CaterpillarKey:
    """A device's caterpillar private key and its expansion key, in software.

    The device's side of butterfly issuance: cocoon keys for (i, j), and from them the
    pseudonym key of an explicit (``b + c``) or implicit (``e·b + r``) certificate, returned as
    a private key object (it never leaves as a number). A secure element keeps the same math
    behind its APDU interface.
    """

    def __init__(self, key: ec.EllipticCurvePrivateKey, expansion: bytes) -> None:
        self._key = key
        self._expansion = expansion

    @classmethod
    def generate(cls, curve: ec.EllipticCurve) -> CaterpillarKey:
        return cls(new_private_key(curve), secrets.token_bytes(16))

    @property
    def expansion_key(self) -> bytes:
        """The AES-128 expansion key k, which the device sends the RA (it is not a secret there)."""
        return self._expansion

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._key.public_key()

    def _cocoon(self, i: int, j: int, encryption: bool) -> int:
        seed = self._key.private_numbers().private_value
        return expand_private(
            seed, self._expansion, i, j, encryption=encryption, curve=self._key.curve
        )

    def cocoon_key(self, i: int, j: int, *, encryption: bool = False) -> ec.EllipticCurvePrivateKey:
        """b(i, j) = a + f_k(i, j) as a key object (for ECDH on a response)."""
        return ec.derive_private_key(self._cocoon(i, j, encryption), self._key.curve)

    def release(self, key: object) -> None:
        """Nothing to erase: a software cocoon key goes with its last reference."""

    def explicit_key(self, i: int, j: int, c: int) -> Signer:
        curve = self._key.curve
        value = explicit_private_key(self._cocoon(i, j, False), c, curve)
        return SoftwareSigner(ec.derive_private_key(value, curve))

    def implicit_key(self, i: int, j: int, e: int, r: int) -> Signer:
        curve = self._key.curve
        value = implicit_private_key(e, self._cocoon(i, j, False), r, curve)
        return SoftwareSigner(ec.derive_private_key(value, curve))
