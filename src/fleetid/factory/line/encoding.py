"""DER the line encodes once: per certificate, per public key, per unit.

A unit's IDevID and keys are named in its audit events and manifest row at several steps, and
every unit shares its line CA and root; encoding and hashing each once keeps that off the
line's per-device cost.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import lru_cache

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.factory.manufacturer import certificate_fingerprint

__all__ = ["DerCache", "certificates_der", "fingerprint", "spki"]


def spki(key: ec.EllipticCurvePublicKey) -> bytes:
    """The DER SubjectPublicKeyInfo of ``key``."""
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@lru_cache(maxsize=4096)
def fingerprint(certificate: x509.Certificate) -> str:
    """``certificate_fingerprint``, once per certificate."""
    return certificate_fingerprint(certificate)


def certificates_der(*certificates: x509.Certificate) -> bytes:
    """The DER of ``certificates``, concatenated in order."""
    return b"".join(c.public_bytes(serialization.Encoding.DER) for c in certificates)


@dataclass
class DerCache:
    """DER of the keys and certificates of one unit, by object: each is encoded once."""

    _encoded: dict[int, tuple[object, bytes]] = field(default_factory=dict, repr=False)

    def der(self, value: x509.Certificate | ec.EllipticCurvePublicKey) -> bytes:
        """DER of a certificate, SubjectPublicKeyInfo of a public key; once per object."""
        cached = self._encoded.get(id(value))
        if cached is not None and cached[0] is value:
            return cached[1]
        der = certificates_der(value) if isinstance(value, x509.Certificate) else spki(value)
        self._encoded[id(value)] = (value, der)
        return der

    def fingerprint(self, certificate: x509.Certificate) -> str:
        """``certificate_fingerprint``: SHA-256 of the DER, lower-case hex."""
        return hashlib.sha256(self.der(certificate)).hexdigest()
