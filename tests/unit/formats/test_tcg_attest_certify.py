"""The TcgAttestCertify codec against an independent ASN.1 compiler (asn1tools) on the TCG
module text, and its refusals of what is not DER."""

from __future__ import annotations

import asn1tools
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetid.errors import EncodingError
from fleetid.formats.tcg_attest_certify import (
    TcgAttestCertify,
    decode_tcg_attest_certify,
    encode_tcg_attest_certify,
)

# As draft-ietf-lamps-csr-attestation's TPM example and draft-birkholz-rats-tcg-tpm2-attestation
# define it.
_MODULE = asn1tools.compile_string(
    """
    Tcg DEFINITIONS ::= BEGIN
    TcgAttestCertify ::= SEQUENCE {
        tpmSAttest  OCTET STRING,
        signature   OCTET STRING,
        tpmTPublic  OCTET STRING OPTIONAL }
    END
    """,
    "der",
)


@given(
    attest=st.binary(max_size=300),
    signature=st.binary(max_size=150),
    public=st.none() | st.binary(max_size=200),
)
def test_our_encoding_is_asn1tools_der_and_reads_back(
    attest: bytes, signature: bytes, public: bytes | None
) -> None:
    statement = TcgAttestCertify(attest=attest, signature=signature, public=public)
    ours = encode_tcg_attest_certify(statement)
    value: dict[str, bytes] = {"tpmSAttest": attest, "signature": signature}
    if public is not None:
        value["tpmTPublic"] = public
    assert ours == _MODULE.encode("TcgAttestCertify", value)
    assert decode_tcg_attest_certify(ours) == statement


def test_trailing_bytes_are_refused() -> None:
    der = encode_tcg_attest_certify(TcgAttestCertify(attest=b"a", signature=b"s", public=b"p"))
    with pytest.raises(EncodingError):
        decode_tcg_attest_certify(der + b"\x00")


def test_a_long_form_length_is_refused() -> None:
    """BER's non-minimal length (X.690 §10.1): the same value, not DER."""
    der = encode_tcg_attest_certify(TcgAttestCertify(attest=b"a", signature=b"s"))
    ber = b"\x30\x81" + der[1:]
    with pytest.raises(EncodingError):
        decode_tcg_attest_certify(ber)


@pytest.mark.parametrize(
    "der",
    [b"", b"\x04\x01a", b"\x30\x03\x04\x01a", b"\x30\x06\x02\x01\x01\x04\x01s"],
    ids=["empty", "octet-string", "one-field", "integer-first"],
)
def test_what_is_not_a_tcg_attest_certify_is_refused(der: bytes) -> None:
    with pytest.raises(EncodingError):
        decode_tcg_attest_certify(der)
