"""PKCS#10 requests as the authority receives them: parsed, signature-checked, key-checked.

Each refusal is its own error: bytes that are not a CSR (``EncodingError``), a CSR whose
self-signature does not verify (``VerificationError``, RFC 2986 §3: it proves possession of the
key), and a key the policy does not accept (``PolicyError``).
"""

from __future__ import annotations

import hashlib

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.crypto.pkix import csr_self_signed
from fleetid.errors import EncodingError, PolicyError, VerificationError

__all__ = ["ACCEPTED_CURVES", "load_csr", "public_key_sha256"]

ACCEPTED_CURVES = ("secp256r1", "secp384r1")


def load_csr(der: bytes) -> x509.CertificateSigningRequest:
    """A CSR from its DER, with a valid self-signature over an accepted EC key."""
    try:
        csr = x509.load_der_x509_csr(der)
        public_key = csr.public_key()
    except (ValueError, x509.InvalidVersion) as exc:
        # pyca's own text is a Rust debug dump: it stays on the chained exception, off the wire.
        # (InvalidVersion, for a version other than v1, is no ValueError: found by fuzzing.)
        raise EncodingError("the body is not a DER PKCS#10 CertificationRequest") from exc
    except UnsupportedAlgorithm as exc:
        # A key type or curve parameters pyca cannot load (found by fuzzing: an unknown curve
        # OID, or a known one in a malformed AlgorithmIdentifier).
        raise PolicyError("the CSR's key is not an accepted EC key (P-256 or P-384)") from exc
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise PolicyError("only EC keys are enrolled (P-256 or P-384)")
    if public_key.curve.name not in ACCEPTED_CURVES:
        raise PolicyError(f"curve {public_key.curve.name} is not accepted; use P-256 or P-384")
    if not csr_self_signed(csr):
        raise VerificationError(
            "the CSR signature does not verify with its own public key (RFC 2986 §3)"
        )
    return csr


def public_key_sha256(public_key: ec.EllipticCurvePublicKey) -> bytes:
    """SHA-256 of the DER SubjectPublicKeyInfo: how the store finds a key's certificates."""
    spki = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).digest()
