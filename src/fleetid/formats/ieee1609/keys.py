"""IEEE 1609.2 ASN.1 values for keys and signatures, to and from pyca key objects.

A point is an ``EccP256CurvePoint``/``EccP384CurvePoint`` CHOICE: x-only, compressed-y-0/1 or
uncompressedP256/P384. Canonical form (IEEE 1609.2 §6.1.2, used before hashing a certificate)
has keys compressed and the signature's r x-only.
"""

from __future__ import annotations

from typing import Any

from fleetid.crypto.v2xkeys import (
    PublicKey,
    compressed_point,
    curve_name_of,
    field_size,
    public_key_from_point,
)
from fleetid.errors import EncodingError

__all__ = [
    "canonical_point",
    "canonical_signature",
    "ecies_choice",
    "ecies_curve",
    "encryption_key_value",
    "point_value",
    "public_key_from_encryption_key",
    "public_key_from_point_value",
    "public_key_from_verification_key",
    "rs_from_signature",
    "signature_curve",
    "signature_value",
    "verification_curve",
    "verification_key_value",
]

# PublicVerificationKey alternative -> curve, and back.
_VERIFICATION = {
    "ecdsaNistP256": "nistP256",
    "ecdsaBrainpoolP256r1": "brainpoolP256r1",
    "ecdsaBrainpoolP384r1": "brainpoolP384r1",
    "ecdsaNistP384": "nistP384",
}
# BasePublicEncryptionKey / EncryptedDataEncryptionKey alternative -> curve.
_ENCRYPTION = {"eciesNistP256": "nistP256", "eciesBrainpoolP256r1": "brainpoolP256r1"}
# Signature alternative -> curve.
_SIGNATURE = {
    "ecdsaNistP256Signature": "nistP256",
    "ecdsaBrainpoolP256r1Signature": "brainpoolP256r1",
    "ecdsaBrainpoolP384r1Signature": "brainpoolP384r1",
    "ecdsaNistP384Signature": "nistP384",
}


def _choice_for(table: dict[str, str], curve_name: str, what: str) -> str:
    for choice, name in table.items():
        if name == curve_name:
            return choice
    raise EncodingError(f"{curve_name} cannot carry {what} in IEEE 1609.2")


def point_value(sec1_point: bytes) -> tuple[str, Any]:
    """An EccP256/P384CurvePoint value from a SEC 1 point (kept compressed or uncompressed)."""
    size = (len(sec1_point) - 1) // (2 if sec1_point[:1] == b"\x04" else 1)
    if sec1_point[:1] == b"\x04" and len(sec1_point) == 1 + 2 * size:
        uncompressed = "uncompressedP256" if size == 32 else "uncompressedP384"
        return (uncompressed, {"x": sec1_point[1 : 1 + size], "y": sec1_point[1 + size :]})
    if sec1_point[:1] in (b"\x02", b"\x03"):
        return ("compressed-y-0" if sec1_point[0] == 2 else "compressed-y-1", sec1_point[1:])
    raise EncodingError("not a SEC 1 point")


def _sec1(point: tuple[str, Any]) -> bytes:
    kind, content = point
    if kind == "compressed-y-0":
        return b"\x02" + bytes(content)
    if kind == "compressed-y-1":
        return b"\x03" + bytes(content)
    if kind in ("uncompressedP256", "uncompressedP384"):
        return b"\x04" + bytes(content["x"]) + bytes(content["y"])
    raise EncodingError(f"a public key cannot be given as {kind}")


def public_key_from_point_value(curve_name: str, point: tuple[str, Any]) -> PublicKey:
    key = public_key_from_point(curve_name, _sec1(point))
    if len(_sec1(point)) not in (1 + field_size(curve_name), 1 + 2 * field_size(curve_name)):
        raise EncodingError(f"point size does not match {curve_name}")
    return key


def canonical_point(curve_name: str, point: tuple[str, Any]) -> tuple[str, Any]:
    """The compressed form of a key point (IEEE 1609.2 §6.1.2)."""
    if point[0] in ("compressed-y-0", "compressed-y-1"):
        return point
    return point_value(compressed_point(public_key_from_point_value(curve_name, point)))


def verification_key_value(key: PublicKey) -> tuple[str, Any]:
    """A PublicVerificationKey value, compressed."""
    name = curve_name_of(key)
    return (
        _choice_for(_VERIFICATION, name, "a verification key"),
        point_value(compressed_point(key)),
    )


def public_key_from_verification_key(value: tuple[str, Any]) -> PublicKey:
    choice, point = value
    if choice not in _VERIFICATION:
        raise EncodingError(f"unsupported verification key type {choice}")
    return public_key_from_point_value(_VERIFICATION[choice], point)


def verification_curve(value: tuple[str, Any]) -> str:
    """The curve of a PublicVerificationKey value."""
    if value[0] not in _VERIFICATION:
        raise EncodingError(f"unsupported verification key type {value[0]}")
    return _VERIFICATION[value[0]]


def encryption_key_value(key: PublicKey) -> dict[str, Any]:
    """A PublicEncryptionKey value (AES-128-CCM, ECIES on P-256 or brainpoolP256r1)."""
    name = curve_name_of(key)
    choice = _choice_for(_ENCRYPTION, name, "an ECIES encryption key")
    return {
        "supportedSymmAlg": "aes128Ccm",
        "publicKey": (choice, point_value(compressed_point(key))),
    }


def public_key_from_encryption_key(value: dict[str, Any]) -> tuple[str, PublicKey]:
    """(ECIES alternative name, key) from a PublicEncryptionKey value."""
    if value["supportedSymmAlg"] != "aes128Ccm":
        raise EncodingError("unsupported symmetric algorithm")
    choice, point = value["publicKey"]
    if choice not in _ENCRYPTION:
        raise EncodingError(f"unsupported encryption key type {choice}")
    return choice, public_key_from_point_value(_ENCRYPTION[choice], point)


def ecies_choice(key: PublicKey) -> str:
    """The EncryptedDataEncryptionKey alternative for an ECIES key on this curve."""
    return _choice_for(_ENCRYPTION, curve_name_of(key), "an ECIES encryption key")


def ecies_curve(choice: str) -> str:
    if choice not in _ENCRYPTION:
        raise EncodingError(f"unsupported ECIES key type {choice}")
    return _ENCRYPTION[choice]


def signature_value(r: int, s: int, curve_name: str) -> tuple[str, Any]:
    """A Signature value in canonical form: r x-only (IEEE 1609.2 §6.3.29)."""
    size = field_size(curve_name)
    choice = _choice_for(_SIGNATURE, curve_name, "a signature")
    return (choice, {"rSig": ("x-only", r.to_bytes(size, "big")), "sSig": s.to_bytes(size, "big")})


def signature_curve(value: tuple[str, Any]) -> str:
    if value[0] not in _SIGNATURE:
        raise EncodingError(f"unsupported signature type {value[0]}")
    return _SIGNATURE[value[0]]


def rs_from_signature(value: tuple[str, Any]) -> tuple[int, int]:
    """(r, s) of a Signature value; r is the x-coordinate whatever form rSig takes."""
    signature_curve(value)
    body = value[1]
    kind, content = body["rSig"]
    if kind in ("x-only", "compressed-y-0", "compressed-y-1"):
        r_bytes = bytes(content)
    elif kind in ("uncompressedP256", "uncompressedP384"):
        r_bytes = bytes(content["x"])
    else:
        raise EncodingError(f"rSig cannot be {kind}")
    return int.from_bytes(r_bytes, "big"), int.from_bytes(bytes(body["sSig"]), "big")


def canonical_signature(value: tuple[str, Any]) -> tuple[str, Any]:
    """The signature with rSig as x-only (IEEE 1609.2 §6.1.2)."""
    r, s = rs_from_signature(value)
    return signature_value(r, s, signature_curve(value))
