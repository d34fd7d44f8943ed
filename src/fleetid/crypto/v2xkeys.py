"""EC keys and signatures in the forms IEEE 1609.2 carries them.

1609.2 names curves by the alternative that carries a key (``ecdsaNistP256``,
``eciesBrainpoolP256r1`` ...), points as SEC 1 compressed or uncompressed coordinates, and an
ECDSA signature as (r, s) with r given as the x-coordinate of the nonce point (§6.3.29, x-only in
canonical form). This module converts between those forms and pyca key objects; the ASN.1
shapes themselves live in ``fleetid.formats.ieee1609``.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed,
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from fleetid.crypto.keys import new_private_key
from fleetid.crypto.signer import Signer, hash_for_curve
from fleetid.crypto.v2xhash import HashName, digest, hash_for_key_size, signing_input
from fleetid.errors import EncodingError, VerificationError

__all__ = [
    "CURVES",
    "PrivateKey",
    "PublicKey",
    "compressed_point",
    "curve_name_of",
    "field_size",
    "generate_key",
    "hash_name_of",
    "public_key_from_point",
    "sign_1609",
    "verify_1609",
]

PublicKey = ec.EllipticCurvePublicKey
PrivateKey = ec.EllipticCurvePrivateKey

#: The curves IEEE 1609.2 / ETSI TS 103 097 use, by a short name fleetid uses throughout.
CURVES: dict[str, ec.EllipticCurve] = {
    "nistP256": ec.SECP256R1(),
    "brainpoolP256r1": ec.BrainpoolP256R1(),
    "nistP384": ec.SECP384R1(),
    "brainpoolP384r1": ec.BrainpoolP384R1(),
}

_NAME_BY_OPENSSL = {curve.name: short for short, curve in CURVES.items()}


def curve_name_of(key: ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) -> str:
    """The short curve name (``nistP256`` ...) of a key; ``EncodingError`` if 1609.2 has none."""
    try:
        return _NAME_BY_OPENSSL[key.curve.name]
    except KeyError:
        raise EncodingError(f"IEEE 1609.2 does not use curve {key.curve.name}") from None


def field_size(curve_name: str) -> int:
    """Bytes in one coordinate: 32 or 48."""
    return (CURVES[curve_name].key_size + 7) // 8


def hash_name_of(key: ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) -> HashName:
    return hash_for_key_size(key.curve.key_size)


def generate_key(curve_name: str) -> ec.EllipticCurvePrivateKey:
    """A fresh software key on a named curve (tests and software authorities)."""
    return new_private_key(CURVES[curve_name])


def public_key_from_point(curve_name: str, sec1_point: bytes) -> ec.EllipticCurvePublicKey:
    """A key from a SEC 1 point (02/03 ‖ x or 04 ‖ x ‖ y); ``EncodingError`` if off the curve."""
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(CURVES[curve_name], sec1_point)
    except (KeyError, ValueError) as exc:
        raise EncodingError(f"not a point on {curve_name}") from exc


def compressed_point(key: ec.EllipticCurvePublicKey) -> bytes:
    """SEC 1 compressed encoding (02/03 ‖ x), the canonical 1609.2 form of a public key."""
    return key.public_bytes(Encoding.X962, PublicFormat.CompressedPoint)


def sign_1609(signer: Signer, tbs: bytes, signer_certificate: bytes) -> tuple[int, int]:
    """ECDSA (r, s) over ``H(H(tbs) ‖ H(signer))`` (IEEE 1609.2 §5.3.1).

    ``signer_certificate`` is the COER signer certificate, or b"" for a self-signed item. The
    signer hashes its message with its own hash, which for 1609.2 curves is the 1609.2 hash.
    """
    hash_name = hash_name_of(signer.public_key())
    if signer.hash_algorithm.name != hash_name:
        raise ValueError("the signer's hash does not match IEEE 1609.2 for its curve")
    r, s = decode_dss_signature(signer.sign(signing_input(tbs, signer_certificate, hash_name)))
    return r, s


def verify_1609(
    public_key: ec.EllipticCurvePublicKey,
    r: int,
    s: int,
    tbs: bytes,
    signer_certificate: bytes,
) -> None:
    """Verify an IEEE 1609.2 signature; raise ``VerificationError`` if it does not verify."""
    hash_name = hash_name_of(public_key)
    message = signing_input(tbs, signer_certificate, hash_name)
    algorithm = hash_for_curve(public_key.curve)
    digest_of_message = digest(message, hash_name)
    try:
        public_key.verify(
            encode_dss_signature(r, s), digest_of_message, ec.ECDSA(Prehashed(algorithm))
        )
    except (InvalidSignature, ValueError) as exc:  # ValueError: r or s out of range
        raise VerificationError("IEEE 1609.2 signature does not verify") from exc
