"""Signing an OCSP response with the delegated responder's in-process key (RFC 6960 §4.2.1).

A delegated responder's key is a software key the OCSP service holds (``fleetid.revocation.ocsp``:
the CA key never signs responses, and a leaked responder key is bounded by its certificate's short
life), so a response is signed by pyca's builder directly, with the hash of the key's curve (FIPS
186-5), once per response: pre-signing a fleet's responses and answering nonce requests are
throughput paths. This is the one place outside the boundaries that signs one.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp

from fleetid.crypto.signer import hash_for_curve

__all__ = ["sign_ocsp_response"]


def sign_ocsp_response(builder: ocsp.OCSPResponseBuilder, key: ec.EllipticCurvePrivateKey) -> bytes:
    """The DER OCSPResponse ``builder`` describes, signed by the responder's ``key``."""
    response = builder.sign(key, hash_for_curve(key.curve))
    return response.public_bytes(serialization.Encoding.DER)
