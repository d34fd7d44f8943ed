"""The TCG key-attestation statement ``TcgAttestCertify`` (``tcg-attest-tpm-certify``).

draft-ietf-lamps-csr-attestation leaves statement formats to their owners (§4.2); the TCG's
format for a TPM 2.0 key, as draft-ietf-lamps-csr-attestation's TPM example and
draft-birkholz-rats-tcg-tpm2-attestation give it, is::

    id-tcg-attest-certify OBJECT IDENTIFIER ::= { 2 23 133 20 1 }
    TcgAttestCertify ::= SEQUENCE {
        tpmSAttest  OCTET STRING,           -- TPMS_ATTEST, as TPM2_Certify returned it
        signature   OCTET STRING,           -- TPMT_SIGNATURE over tpmSAttest
        tpmTPublic  OCTET STRING OPTIONAL } -- TPMT_PUBLIC of the certified key

Each OCTET STRING holds a TPM structure in the TPM's own marshalling (TPM 2.0 Library Part 2);
this module only carries them: ``fleetid.tpm.evidence`` reads them with tpm2-pytss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from asn1crypto import core

from fleetid.errors import EncodingError

__all__ = [
    "TCG_ATTEST_CERTIFY_OID",
    "TcgAttestCertify",
    "decode_tcg_attest_certify",
    "encode_tcg_attest_certify",
]

TCG_ATTEST_CERTIFY_OID = "2.23.133.20.1"


class _TcgAttestCertify(core.Sequence):  # type: ignore[misc]  # asn1crypto is untyped
    _fields: ClassVar[list[tuple[str, Any, dict[str, Any]] | tuple[str, Any]]] = [
        ("tpmSAttest", core.OctetString),
        ("signature", core.OctetString),
        ("tpmTPublic", core.OctetString, {"optional": True}),
    ]


@dataclass(frozen=True, kw_only=True)
class TcgAttestCertify:
    """The three marshalled TPM structures of a TPM2_Certify, as carried in a CSR."""

    attest: bytes  # TPMS_ATTEST
    signature: bytes  # TPMT_SIGNATURE
    public: bytes | None = None  # TPMT_PUBLIC of the certified key


def encode_tcg_attest_certify(statement: TcgAttestCertify) -> bytes:
    """DER of the ``TcgAttestCertify`` SEQUENCE."""
    value: dict[str, bytes] = {"tpmSAttest": statement.attest, "signature": statement.signature}
    if statement.public is not None:
        value["tpmTPublic"] = statement.public
    return bytes(_TcgAttestCertify(value).dump())


def decode_tcg_attest_certify(der: bytes) -> TcgAttestCertify:
    """Parse a DER ``TcgAttestCertify``; ``EncodingError`` for anything else (BER, trailing
    bytes, a missing field)."""
    try:
        parsed = _TcgAttestCertify.load(der, strict=True)
        public = parsed["tpmTPublic"].native
        statement = TcgAttestCertify(
            attest=parsed["tpmSAttest"].native,
            signature=parsed["signature"].native,
            public=public,
        )
    except (ValueError, TypeError, KeyError) as exc:
        raise EncodingError(f"not a TcgAttestCertify: {exc}") from exc
    if encode_tcg_attest_certify(statement) != der:
        raise EncodingError("the TcgAttestCertify is not in DER form")
    return statement
