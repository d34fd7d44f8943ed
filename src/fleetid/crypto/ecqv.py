"""Implicit certificates: the Elliptic Curve Qu-Vanstone scheme (SEC 4 v1.0 §3), as IEEE 1609.2
§5.3.2 uses it.

An implicit certificate carries no public key and no signature, only a *reconstruction point*
P_U. The CA, with private key d_CA, answers a request point R_U = k_U·G::

    P_U = R_U + k·G            (k: the CA's fresh secret)
    e   = Hn(certificate)
    r   = e·k + d_CA  mod n    (the private-key reconstruction value, sent to the requester)

and then the requester holds ``d_U = e·k_U + r``, and anyone holding the certificate and the
CA's key computes ``Q_U = e·P_U + Q_CA`` (= d_U·G). Hn keeps the leftmost ⌊log2 n⌋ bits of the
hash (1609.2 §5.3.2); the hash input is SEC 4's certificate encoding in general and, in
1609.2, ``H(tbs) ‖ H(issuer certificate)`` (the data-to-sign rule of §5.3.1).
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.crypto import ecpoint
from fleetid.crypto.v2xhash import data_to_sign_digest, hash_for_key_size
from fleetid.errors import EncodingError

__all__ = [
    "certificate_hash_integer",
    "hash_to_integer",
    "private_key_reconstruction_value",
    "reconstruct_private",
    "reconstruct_public",
    "reconstruction_point",
]


def hash_to_integer(digest: bytes, curve: ec.EllipticCurve) -> int:
    """Hn: the leftmost ⌊log2 n⌋ bits of a digest, as an integer (1609.2 §5.3.2)."""
    bits = ecpoint.group_order(curve).bit_length() - 1
    excess = 8 * len(digest) - bits
    value = int.from_bytes(digest, "big")
    return value >> excess if excess > 0 else value


def certificate_hash_integer(tbs: bytes, issuer: bytes, curve: ec.EllipticCurve) -> int:
    """e for a 1609.2 implicit certificate: Hn(H(H(tbs) ‖ H(issuer certificate)))."""
    hash_name = hash_for_key_size(curve.key_size)
    return hash_to_integer(data_to_sign_digest(tbs, issuer, hash_name), curve)


def reconstruction_point(request: ec.EllipticCurvePublicKey, k: int) -> ec.EllipticCurvePublicKey:
    """P_U = R_U + k·G (the CA's side; k is its fresh secret)."""
    return ecpoint.add_base_multiple(request, k)


def _scalar(value: int, curve: ec.EllipticCurve, what: str) -> int:
    n = ecpoint.group_order(curve)
    if not 0 < value < n:
        raise EncodingError(f"{what} is an integer in [1, n-1]")
    return value


def private_key_reconstruction_value(
    e: int, k: int, ca_private: int, curve: ec.EllipticCurve
) -> int:
    """r = e·k + d_CA mod n (the CA's side)."""
    n = ecpoint.group_order(curve)
    _scalar(k, curve, "the CA's ephemeral key k")
    _scalar(ca_private, curve, "the CA's private key")
    return (e * k + ca_private) % n


def reconstruct_private(e: int, request_private: int, r: int, curve: ec.EllipticCurve) -> int:
    """d_U = e·k_U + r mod n (the requester's side)."""
    n = ecpoint.group_order(curve)
    _scalar(request_private, curve, "the request's private key")
    if not 0 <= r < n:
        raise EncodingError("the reconstruction value r is an integer in [0, n-1]")
    d = (e * request_private + r) % n
    if d == 0:
        raise EncodingError("the reconstructed private key is 0 mod n")
    return d


def reconstruct_public(
    e: int, reconstruction: ec.EllipticCurvePublicKey, ca_public: ec.EllipticCurvePublicKey
) -> ec.EllipticCurvePublicKey:
    """Q_U = e·P_U + Q_CA (anyone's side)."""
    return ecpoint.multiply_add(e, reconstruction, ca_public)
