"""Reading a TPM2_Certify: the TPM structures of a ``TcgAttestCertify``, and their signature.

The structures are the TPM's own marshalling (TPM 2.0 Library Part 2, Structures):
``TPMS_ATTEST`` with ``TPMS_CERTIFY_INFO``, ``TPMT_SIGNATURE`` and ``TPMT_PUBLIC``. tpm2-pytss
unmarshals them (``fleetid.tpm.stack``); nothing here parses TPM bytes by hand. A structure
must be consumed exactly: trailing bytes are refused.

``read_certify`` answers what the verifier rules on; ``verify_certify_signature`` checks the
attestation key's ECDSA signature over the ``TPMS_ATTEST`` bytes (the signed digest is the hash
of the attestation structure).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from fleetid.crypto.signer import verify_signature
from fleetid.errors import EncodingError
from fleetid.formats.tcg_attest_certify import TcgAttestCertify
from fleetid.tpm.stack import tss

__all__ = [
    "CertifiedKey",
    "ObjectAttributes",
    "object_attributes",
    "object_name",
    "public_key_of",
    "read_certify",
    "verify_certify_signature",
]


@dataclass(frozen=True, kw_only=True)
class ObjectAttributes:
    """The ``TPMA_OBJECT`` bits a key's verifier rules on (Part 2)."""

    fixed_tpm: bool  # the key cannot be duplicated out of this TPM
    fixed_parent: bool  # … nor to another parent
    sensitive_data_origin: bool  # the TPM generated the private key
    restricted: bool  # signs only TPM-generated structures, or decrypts only TPM formats
    sign: bool
    decrypt: bool


@dataclass(frozen=True, kw_only=True)
class CertifiedKey:
    """A TPM2_Certify as read: the attestation's fields and the certified key's public area."""

    attest: bytes  # the TPMS_ATTEST bytes the signature covers
    magic: int
    attest_type: int
    generated_by_tpm: bool  # magic == TPM_GENERATED_VALUE
    is_certify: bool  # type == TPM_ST_ATTEST_CERTIFY
    extra_data: bytes  # the qualifying data the TPM was given: the authority's challenge
    certified_name: bytes  # the Name the TPM says it certified
    key_name: bytes  # the Name of the public area carried beside it
    attributes: ObjectAttributes
    public_key: ec.EllipticCurvePublicKey
    signature: bytes  # DER ECDSA
    signature_hash: hashes.HashAlgorithm


def _unmarshal(kind: Any, data: bytes, what: str) -> Any:
    try:
        value, used = kind.unmarshal(data)
    except Exception as exc:  # the binding raises whatever the TSS's unmarshaller reports
        raise EncodingError(f"the {what} does not unmarshal: {exc}") from exc
    if used != len(data):
        raise EncodingError(f"the {what} has {len(data) - used} bytes after its end")
    return value


def object_attributes(public: bytes) -> ObjectAttributes:
    """The attributes of a marshalled ``TPMT_PUBLIC``."""
    tpm = tss()
    area = _unmarshal(tpm.TPMT_PUBLIC, public, "TPMT_PUBLIC")
    return _attributes(tpm, area)


def _attributes(tpm: Any, area: Any) -> ObjectAttributes:
    bits = int(area.objectAttributes)
    flags = tpm.TPMA_OBJECT
    return ObjectAttributes(
        fixed_tpm=bool(bits & flags.FIXEDTPM),
        fixed_parent=bool(bits & flags.FIXEDPARENT),
        sensitive_data_origin=bool(bits & flags.SENSITIVEDATAORIGIN),
        restricted=bool(bits & flags.RESTRICTED),
        sign=bool(bits & flags.SIGN_ENCRYPT),
        decrypt=bool(bits & flags.DECRYPT),
    )


def object_name(public: bytes) -> bytes:
    """The Name of a marshalled ``TPMT_PUBLIC``: nameAlg || H(public area) (Part 1 §16)."""
    area = _unmarshal(tss().TPMT_PUBLIC, public, "TPMT_PUBLIC")
    return bytes(area.get_name())


def _ec_key(tpm: Any, area: Any, what: str) -> ec.EllipticCurvePublicKey:
    if int(area.type) != int(tpm.TPM2_ALG.ECC):
        raise EncodingError(f"the {what} is not an ECC key")
    try:
        key = serialization.load_pem_public_key(bytes(area.to_pem()))
    except (ValueError, tpm.TSS2_Exception) as exc:
        raise EncodingError(f"the {what}'s point does not load: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise EncodingError(f"the {what} is not an EC key")
    return key


def public_key_of(public: bytes) -> ec.EllipticCurvePublicKey:
    """The EC public key of a marshalled ``TPMT_PUBLIC``."""
    tpm = tss()
    return _ec_key(tpm, _unmarshal(tpm.TPMT_PUBLIC, public, "TPMT_PUBLIC"), "public area")


_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "SHA256": hashes.SHA256,
    "SHA384": hashes.SHA384,
    "SHA512": hashes.SHA512,
}


def _hash_named(tpm: Any, algorithm: int) -> hashes.HashAlgorithm | None:
    for name, kind in _HASHES.items():
        if algorithm == int(getattr(tpm.TPM2_ALG, name)):
            return kind()
    return None


def _signature(tpm: Any, data: bytes) -> tuple[bytes, hashes.HashAlgorithm]:
    """A ``TPMT_SIGNATURE`` of ECDSA (Part 2) as DER and its hash."""
    signature = _unmarshal(tpm.TPMT_SIGNATURE, data, "TPMT_SIGNATURE")
    if int(signature.sigAlg) != int(tpm.TPM2_ALG.ECDSA):
        raise EncodingError(f"the signature is not ECDSA (sigAlg 0x{int(signature.sigAlg):04X})")
    ecdsa = signature.signature.ecdsa
    algorithm = _hash_named(tpm, int(ecdsa.hash))
    if algorithm is None:
        raise EncodingError(f"the signature's hash 0x{int(ecdsa.hash):04X} is not SHA-2")
    r = int.from_bytes(bytes(ecdsa.signatureR), "big")
    s = int.from_bytes(bytes(ecdsa.signatureS), "big")
    return encode_dss_signature(r, s), algorithm


def read_certify(statement: TcgAttestCertify) -> CertifiedKey:
    """The TPM structures of a ``TcgAttestCertify``; ``EncodingError`` if any does not read,
    ``TpmError`` if the TPM stack is not installed."""
    if statement.public is None:
        raise EncodingError("the TcgAttestCertify carries no tpmTPublic: the key is unknown")
    tpm = tss()
    attest = _unmarshal(tpm.TPMS_ATTEST, statement.attest, "TPMS_ATTEST")
    area = _unmarshal(tpm.TPMT_PUBLIC, statement.public, "TPMT_PUBLIC")
    signature, signature_hash = _signature(tpm, statement.signature)
    is_certify = int(attest.type) == int(tpm.TPM2_ST.ATTEST_CERTIFY)
    return CertifiedKey(
        attest=statement.attest,
        magic=int(attest.magic),
        attest_type=int(attest.type),
        generated_by_tpm=int(attest.magic) == int(tpm.TPM2_GENERATED.VALUE),
        is_certify=is_certify,
        extra_data=bytes(attest.extraData),
        certified_name=bytes(attest.attested.certify.name) if is_certify else b"",
        key_name=bytes(area.get_name()),
        attributes=_attributes(tpm, area),
        public_key=_ec_key(tpm, area, "certified key"),
        signature=signature,
        signature_hash=signature_hash,
    )


def verify_certify_signature(
    attestation_key: ec.EllipticCurvePublicKey, certified: CertifiedKey
) -> None:
    """``VerificationError`` unless ``attestation_key`` signed the ``TPMS_ATTEST``."""
    verify_signature(
        attestation_key, certified.signature, certified.attest, certified.signature_hash
    )
