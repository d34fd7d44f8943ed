"""The signer interface: whatever holds a key (software, HSM or secure element) signs the same way.

Issuance code takes a ``Signer`` and never learns where the private key lives, so moving a CA key
into an HSM, or a device key into its secure element, is configuration, not code.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.errors import VerificationError

__all__ = ["Signer", "SoftwareSigner", "hash_for_curve", "verify_signature"]


def hash_for_curve(curve: ec.EllipticCurve) -> hashes.HashAlgorithm:
    """The hash that goes with a curve: SHA-384 for 384-bit curves, else SHA-256 (FIPS 186-5)."""
    return hashes.SHA384() if curve.key_size >= 384 else hashes.SHA256()


@runtime_checkable
class Signer(Protocol):
    """An ECDSA key that signs by reference; its private half never leaves whatever holds it."""

    def public_key(self) -> ec.EllipticCurvePublicKey: ...

    @property
    def hash_algorithm(self) -> hashes.HashAlgorithm: ...

    def sign(self, data: bytes) -> bytes:
        """A DER-encoded ECDSA signature over ``data`` hashed with ``hash_algorithm``."""
        ...


class SoftwareSigner:
    """A signer over a private key held in this process (tests, software HSM internals)."""

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        self._key = key
        self._hash = hash_for_curve(key.curve)

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._key.public_key()

    @property
    def hash_algorithm(self) -> hashes.HashAlgorithm:
        return self._hash

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data, ec.ECDSA(self._hash))


def verify_signature(
    public_key: ec.EllipticCurvePublicKey,
    signature: bytes,
    data: bytes,
    hash_algorithm: hashes.HashAlgorithm | None = None,
) -> None:
    """Verify a DER ECDSA signature; raise ``VerificationError`` if it does not verify."""
    algorithm = hash_algorithm or hash_for_curve(public_key.curve)
    try:
        public_key.verify(signature, data, ec.ECDSA(algorithm))
    except (InvalidSignature, ValueError) as exc:
        raise VerificationError("ECDSA signature does not verify") from exc
