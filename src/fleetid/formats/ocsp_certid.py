"""The issuer half of an OCSP CertID (RFC 6960 §4.1.1), for the responder and the relying party.

A CertID names a certificate by its serial number and by two hashes of its issuer, both under the
CertID's own hash algorithm: issuerNameHash over the DER encoding of the issuer's subject Name,
and issuerKeyHash over the value of the issuer certificate's subjectPublicKey BIT STRING (no tag,
length or unused-bits octet), which for an EC key is the X9.62 point. The responder
(``fleetid.revocation.ocsp``) and the device (``fleetid.device.verifier``) compute them here, so
the two cannot disagree about which certificate a response speaks of.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.errors import VerificationError

__all__ = ["issuer_hashes"]


def issuer_hashes(issuer: x509.Certificate, algorithm: hashes.HashAlgorithm) -> tuple[bytes, bytes]:
    """(issuerNameHash, issuerKeyHash) of ``issuer`` under ``algorithm``.

    Raises ``VerificationError`` for an issuer whose key is not an EC key (fleet CAs are ECDSA).
    """
    key = issuer.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise VerificationError("fleet CA keys are EC keys")
    point = key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return _digest(algorithm, issuer.subject.public_bytes()), _digest(algorithm, point)


def _digest(algorithm: hashes.HashAlgorithm, data: bytes) -> bytes:
    digest = hashes.Hash(algorithm)
    digest.update(data)
    return digest.finalize()
