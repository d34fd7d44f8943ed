"""The EE-facing butterfly shapes against the IEEE 1609.2.1 ASN.1 text, octet by octet.

The expected bytes are written by hand from X.696 (COER), not produced by our encoder:

* RaEeCertAck (module Ieee1609Dot2Dot1EeRaInterface) is extensible, with firstI OPTIONAL: a
  preamble octet (bit 8 the extension bit, bit 7 firstI present), then version, generationTime,
  requestHash, firstI when present, nextDlTime.
* AcaEeCertResponse (module Ieee1609Dot2Dot1AcaEeInterface) is extensible, with privateKeyInfo
  OPTIONAL: a preamble octet (bit 7 privateKeyInfo present), version, generationTime, the
  certificate's own COER, privateKeyInfo.
"""

from __future__ import annotations

import pytest
from tests.vector_loader import vector_path

from fleetid.errors import EncodingError
from fleetid.formats.butterfly_messages import (
    ACA_EE_CERTIFICATE_OFFSET,
    aca_ee_response,
    decode_message,
    encode_message,
)

_REQUEST_HASH = bytes.fromhex("0102030405060708")
_ACK = {
    "version": 2,
    "generationTime": 0x1A2B3C4D,
    "requestHash": _REQUEST_HASH,
    "firstI": 0x0102,
    "nextDlTime": 0x1A2B3C5D,
}


def test_an_ack_with_first_i_has_the_preamble_bit_set() -> None:
    expected = bytes.fromhex("40021a2b3c4d010203040506070801021a2b3c5d")
    assert encode_message("RaEeCertAck", _ACK) == expected
    assert decode_message("RaEeCertAck", expected) == _ACK


def test_an_ack_without_first_i_has_a_clear_preamble_and_no_i() -> None:
    bare = {k: v for k, v in _ACK.items() if k != "firstI"}
    expected = bytes.fromhex("00021a2b3c4d01020304050607081a2b3c5d")
    assert encode_message("RaEeCertAck", bare) == expected
    assert decode_message("RaEeCertAck", expected) == bare


def test_an_ack_with_an_extension_is_read_as_extensible_and_refused_by_the_strict_codec() -> None:
    """X.696 §16.4-16.5: extension bit set, then the additions' presence bitmap (length 2,
    7 unused bits, first addition present) and the addition as an open type (length 1, 0x2a).
    The type is extensible, so the bytes parse; our codec decodes canonically only what it can
    re-encode, and refuses an addition it does not know rather than drop it silently."""
    extended = bytes.fromhex("c0021a2b3c4d010203040506070801021a2b3c5d020780012a")
    with pytest.raises(EncodingError, match="canonical"):
        decode_message("RaEeCertAck", extended)
    # The extension bit without its bitmap: the decoder looks for the bitmap after the root.
    with pytest.raises(EncodingError, match="out of data"):
        decode_message("RaEeCertAck", extended[:-5])


@pytest.mark.parametrize(
    "octets",
    [
        "40031a2b3c4d010203040506070801021a2b3c5d",  # version 3
        "40021a2b3c4d01020304050607080102",  # nextDlTime cut off
        "20021a2b3c4d010203040506070801021a2b3c5d",  # a presence bit with no field
    ],
)
def test_a_malformed_ack_is_refused(octets: str) -> None:
    with pytest.raises(EncodingError):
        decode_message("RaEeCertAck", bytes.fromhex(octets))


def _certificate() -> bytes:
    """The published 1609.2 test certificate (tests/vectors/data/v2x/PROVENANCE.md)."""
    return vector_path("v2x/TestCertificate.coer").read_bytes()


def test_the_spliced_aca_ee_response_is_the_standard_coer() -> None:
    certificate = _certificate()
    info = int.from_bytes(bytes(range(32)), "big")
    spliced = aca_ee_response(0x1A2B3C4D, certificate, info)
    assert spliced == bytes.fromhex("40021a2b3c4d") + certificate + bytes(range(32))
    assert spliced[ACA_EE_CERTIFICATE_OFFSET:-32] == certificate
    value = decode_message("AcaEeCertResponse", spliced)
    assert bytes(value["privateKeyInfo"]) == bytes(range(32))
    assert encode_message("AcaEeCertResponse", value) == spliced


def test_an_aca_ee_response_without_private_key_info_is_the_standard_coer() -> None:
    certificate = _certificate()
    value = decode_message("AcaEeCertResponse", aca_ee_response(0x1A2B3C4D, certificate, 1))
    del value["privateKeyInfo"]
    assert encode_message("AcaEeCertResponse", value) == bytes.fromhex("00021a2b3c4d") + certificate
