"""IEEE 1609.2 / ETSI TS 103 097 certificates: decode, encode, sign, verify, HashedId8.

A certificate is hashed and signed in canonical form (IEEE 1609.2 §6.1.2, §6.4.3): public keys
compressed and the signature's r x-only. HashedId8 is the low-order 8 bytes of the hash of that
encoding, SHA-256, or SHA-384 when the certificate's own verification key is a 384-bit one
(ETSI TS 103 097 §5.3.9; vanetza agrees). The issuer's signature covers
``H(H(ToBeSignedCertificate) ‖ H(issuer certificate))``, with an empty issuer for a self-signed
root.
"""

from __future__ import annotations

import copy
import functools
import hashlib
from dataclasses import dataclass, field
from typing import Any

from fleetid.crypto.signer import Signer
from fleetid.crypto.v2xhash import HashName
from fleetid.crypto.v2xkeys import (
    PublicKey,
    curve_name_of,
    field_size,
    hash_name_of,
    sign_1609,
    verify_1609,
)
from fleetid.errors import EncodingError, VerificationError
from fleetid.formats.ieee1609.codec import decode, encode
from fleetid.formats.ieee1609.keys import (
    canonical_point,
    canonical_signature,
    ecies_curve,
    public_key_from_encryption_key,
    public_key_from_verification_key,
    rs_from_signature,
    signature_curve,
    signature_value,
    verification_curve,
)

__all__ = [
    "Certificate",
    "certificate_hash_name",
    "decode_certificate",
    "encode_certificate",
    "hashed_id8",
    "hashed_id8_of",
    "sign_certificate",
    "verify_certificate_signature",
]


@dataclass(frozen=True, kw_only=True)
class Certificate:
    """A decoded certificate: the ASN.1 value and the exact bytes it came from."""

    value: dict[str, Any] = field(repr=False)
    encoded: bytes

    @property
    def tbs(self) -> dict[str, Any]:
        tbs: dict[str, Any] = self.value["toBeSigned"]
        return tbs

    @property
    def tbs_encoded(self) -> bytes:
        """COER of ToBeSignedCertificate (exactly the received bytes: decoding is canonical)."""
        return encode("ToBeSignedCertificate", self.value["toBeSigned"])

    @property
    def is_self_signed(self) -> bool:
        return bool(self.value["issuer"][0] == "self")

    @property
    def hashed_id8(self) -> bytes:
        return hashed_id8(self.encoded)

    def verification_key(self) -> PublicKey:
        """The explicit verification key; ``EncodingError`` for an implicit certificate."""
        kind, key = self.tbs["verifyKeyIndicator"]
        if kind != "verificationKey":
            raise EncodingError("an implicit certificate carries no verification key")
        return public_key_from_verification_key(key)

    def encryption_key(self) -> tuple[str, PublicKey] | None:
        """(ECIES alternative, key) of the certificate's encryption key, if it has one."""
        value = self.tbs.get("encryptionKey")
        return None if value is None else public_key_from_encryption_key(value)


def decode_certificate(data: bytes) -> Certificate:
    """Decode a COER certificate; ``EncodingError`` if it is not one."""
    value = decode("Certificate", bytes(data))
    return Certificate(value=value, encoded=bytes(data))


def encode_certificate(certificate: Certificate | dict[str, Any]) -> bytes:
    """COER of a certificate (a ``Certificate`` keeps its received bytes)."""
    if isinstance(certificate, Certificate):
        return certificate.encoded
    return encode("Certificate", certificate)


def certificate_hash_name(value: dict[str, Any]) -> HashName:
    """SHA-384 when the certificate's verification key is 384-bit, else SHA-256."""
    kind, key = value["toBeSigned"]["verifyKeyIndicator"]
    if kind == "verificationKey" and field_size(verification_curve(key)) == 48:
        return "sha384"
    return "sha256"


def _canonical(value: dict[str, Any]) -> dict[str, Any]:
    canonical = copy.deepcopy(value)
    tbs = canonical["toBeSigned"]
    kind, key = tbs["verifyKeyIndicator"]
    if kind == "verificationKey":
        curve = verification_curve(key)
        tbs["verifyKeyIndicator"] = (kind, (key[0], canonical_point(curve, key[1])))
    elif kind == "reconstructionValue":
        tbs["verifyKeyIndicator"] = (kind, canonical_point("nistP256", key))
    encryption = tbs.get("encryptionKey")
    if encryption is not None:
        choice, point = encryption["publicKey"]
        encryption["publicKey"] = (choice, canonical_point(ecies_curve(choice), point))
    if "signature" in canonical:
        canonical["signature"] = canonical_signature(canonical["signature"])
    return canonical


def hashed_id8_of(data: bytes, hash_name: HashName = "sha256") -> bytes:
    """Low-order 8 bytes of the hash of ``data`` (IEEE 1609.2 §6.3.2)."""
    return hashlib.new(hash_name, data).digest()[-8:]


def hashed_id8(certificate_bytes: bytes) -> bytes:
    """HashedId8 of a COER certificate, over its canonical form (IEEE 1609.2 §6.4.3)."""
    data = bytes(certificate_bytes)
    issued = _ISSUED.get(data)
    return issued if issued is not None else _hashed_id8(data)


# A pure function of the bytes; authorities name the same few certificates on every message.
@functools.lru_cache(maxsize=4096)
def _hashed_id8(certificate_bytes: bytes) -> bytes:
    return _hashed_id8_of_value(decode("Certificate", certificate_bytes), certificate_bytes)


def _hashed_id8_of_value(value: dict[str, Any], encoded: bytes) -> bytes:
    """HashedId8 of a certificate whose COER is ``encoded``; re-encodes only if not canonical."""
    canonical = _canonical(value)
    data = encoded if canonical == value else encode("Certificate", canonical)
    return hashed_id8_of(data, certificate_hash_name(value))


@functools.lru_cache(maxsize=256)
def _issuer_hash_name(issuer_certificate: bytes) -> HashName:
    return certificate_hash_name(decode("Certificate", issuer_certificate))


def sign_certificate(
    tbs: dict[str, Any],
    signer: Signer,
    *,
    issuer_certificate: bytes | None,
) -> Certificate:
    """An explicit certificate over ``tbs``; ``issuer_certificate`` None makes it self-signed."""
    hash_name = hash_name_of(signer.public_key())
    if issuer_certificate is None:
        issuer: tuple[str, Any] = ("self", hash_name)
        signer_bytes = b""
    else:
        issuer_hash = _issuer_hash_name(bytes(issuer_certificate))
        choice = "sha384AndDigest" if issuer_hash == "sha384" else "sha256AndDigest"
        issuer = (choice, hashed_id8(issuer_certificate))
        signer_bytes = issuer_certificate
    tbs_encoded = encode("ToBeSignedCertificate", tbs)
    r, s = sign_1609(signer, tbs_encoded, signer_bytes)
    value = {
        "version": 3,
        "type": "explicit",
        "issuer": issuer,
        "toBeSigned": tbs,
        "signature": signature_value(r, s, curve_name_of(signer.public_key())),
    }
    # The value is ours and encode checked it against the type: no need to decode it back.
    encoded = encode("Certificate", value)
    _hashed_id8_cache_put(encoded, _hashed_id8_of_value(value, encoded))
    return Certificate(value=value, encoded=encoded)


def _hashed_id8_cache_put(encoded: bytes, digest: bytes) -> None:
    """Seed ``_hashed_id8``'s cache for a certificate just issued (no decode to hash it)."""
    _ISSUED[encoded] = digest
    if len(_ISSUED) > 4096:
        _ISSUED.pop(next(iter(_ISSUED)))


_ISSUED: dict[bytes, bytes] = {}


def verify_certificate_signature(
    certificate: Certificate, issuer_certificate: Certificate | None
) -> None:
    """Verify an explicit certificate's signature by its issuer (None: self-signed).

    Raises ``VerificationError`` if the issuer does not match or the signature does not verify.
    """
    value = certificate.value
    if value["type"] != "explicit" or "signature" not in value:
        raise VerificationError("only an explicit, signed certificate can be verified")
    issuer_kind, issuer_id = value["issuer"]
    if issuer_certificate is None:
        if issuer_kind != "self":
            raise VerificationError("the certificate is not self-signed")
        key = certificate.verification_key()
        signer_bytes = b""
    else:
        if issuer_kind == "self" or issuer_id != issuer_certificate.hashed_id8:
            raise VerificationError("the certificate names another issuer")
        key = issuer_certificate.verification_key()
        signer_bytes = issuer_certificate.encoded
    if signature_curve(value["signature"]) != curve_name_of(key):
        raise VerificationError("the signature is not on the issuer key's curve")
    r, s = rs_from_signature(value["signature"])
    verify_1609(key, r, s, certificate.tbs_encoded, signer_bytes)
