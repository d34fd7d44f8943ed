"""JWS compact serialisation with an x5c chain (RFC 7515 §4.1.6), by PyJWT.

The FIDO Metadata Service's BLOB is such a JWS (FIDO MDS3 §3.1.7): its header's x5c carries the
signing certificate and its intermediates, and the relying party validates that chain to the
metadata root it was configured with (§3.2). ``verified_jws_payload`` does the
signature and the chain; PyJWT parses the serialisation and checks the signature, pyca validates
the path (RFC 5280 §6, ``fleetid.crypto.pkix.path_verifier``). ``sign_jws`` makes one with a
software key (the demo's and the tests' metadata service).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from datetime import datetime
from typing import Final

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from fleetid.crypto.pkix import PathValidationError, path_verifier, plain_ca_policy
from fleetid.errors import MetadataBlobError

__all__ = ["JWS_ALGORITHMS", "sign_jws", "verified_jws_payload"]

# The JWS algorithms a metadata BLOB may use (MDS3 §3.1.7 names RS256, ES256 and others).
JWS_ALGORITHMS: Final = ("ES256", "ES384", "ES512", "RS256", "PS256")


def verified_jws_payload(
    token: str, anchors: Sequence[x509.Certificate], now: datetime
) -> tuple[bytes, tuple[x509.Certificate, ...]]:
    """The payload of ``token`` and its x5c chain (the signing certificate first), once the
    chain validates to ``anchors`` at ``now`` and the signature verifies under its leaf;
    ``MetadataBlobError`` otherwise."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise MetadataBlobError(f"the BLOB is not a JWS compact serialisation: {exc}") from exc
    chain = _x5c(header.get("x5c"))
    try:
        path_verifier(anchors, now, ca_policy=plain_ca_policy()).verify(chain[0], list(chain[1:]))
    except PathValidationError as exc:
        raise MetadataBlobError(
            f"the BLOB's x5c does not chain to the metadata root: {exc}"
        ) from exc
    key = chain[0].public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise MetadataBlobError("the BLOB's signing certificate holds neither an EC nor an RSA key")
    try:
        payload = jwt.api_jws.decode_complete(token, key=key, algorithms=list(JWS_ALGORITHMS))
    except jwt.PyJWTError as exc:
        raise MetadataBlobError(f"the BLOB's signature does not verify: {exc}") from exc
    return bytes(payload["payload"]), chain


def _x5c(value: object) -> tuple[x509.Certificate, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise MetadataBlobError("the BLOB's header has no x5c array of certificates")
    try:
        # RFC 7515 §4.1.6: each element is base64 (not base64url) of a DER certificate.
        return tuple(
            x509.load_der_x509_certificate(base64.b64decode(v, validate=True)) for v in value
        )
    except ValueError as exc:
        raise MetadataBlobError(f"an x5c element is not a base64 DER certificate: {exc}") from exc


def sign_jws(
    payload: bytes, key: ec.EllipticCurvePrivateKey, chain: Sequence[x509.Certificate]
) -> str:
    """An ES256 JWS of ``payload`` with ``chain`` (signer first) as x5c."""
    x5c = [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in chain]
    return jwt.api_jws.encode(payload, key, algorithm="ES256", headers={"x5c": x5c, "typ": "JWT"})
