"""The COER shortcuts equal the full encoder: signedData composed around ToBeSignedData, the
ToBeSignedData cut out of a received message, and an issued certificate's HashedId8 and value."""

from __future__ import annotations

import copy

import pytest
from tests.v2x_fixtures import new_pki

from fleetid.crypto.signer import SoftwareSigner
from fleetid.crypto.v2xkeys import generate_key
from fleetid.errors import EncodingError
from fleetid.formats.ieee1609 import decode, decode_certificate, encode
from fleetid.formats.ieee1609.certificate import (
    _hashed_id8,
    sign_certificate,
    verify_certificate_signature,
)
from fleetid.formats.ieee1609.signed_data import open_signed_data, sign_data

CURVES = ["nistP256", "brainpoolP256r1", "nistP384", "brainpoolP384r1"]


@pytest.mark.parametrize("curve", CURVES)
@pytest.mark.parametrize("signer_kind", ["self", "digest"])
def test_composed_signed_data_is_what_asn1tools_encodes(curve: str, signer_kind: str) -> None:
    signer = SoftwareSigner(generate_key(curve))
    payload = {"data": {"protocolVersion": 3, "content": ("unsecuredData", b"x" * 300)}}
    header = {"psid": 36, "generationTime": 123456789}
    if signer_kind == "self":
        message = sign_data(payload, header, signer)
    else:
        message = sign_data(
            payload,
            header,
            signer,
            signer_identifier=("digest", bytes(8)),
            signer_certificate=b"\x80" * 20,
        )
    value = decode("Ieee1609Dot2Data", message)  # canonical: decode re-encodes and compares
    assert encode("Ieee1609Dot2Data", value) == message
    opened = open_signed_data(message)
    assert opened.tbs_encoded == encode("ToBeSignedData", value["content"][1]["tbsData"])


def test_trailing_or_truncated_bytes_are_still_refused() -> None:
    signer = SoftwareSigner(generate_key("nistP256"))
    message = sign_data(
        {"data": {"protocolVersion": 3, "content": ("unsecuredData", b"m")}}, {"psid": 36}, signer
    )
    for bad in (message + b"\x00", message[:-1]):
        with pytest.raises(EncodingError):
            open_signed_data(bad)


@pytest.mark.parametrize("family", ["nist", "brainpool"])
def test_an_issued_certificate_is_what_decoding_its_bytes_gives(family: str) -> None:
    pki = new_pki(family)
    root = pki.hierarchy.root
    issued = sign_certificate(
        copy.deepcopy(pki.aa.certificate.tbs),
        root.signer,
        issuer_certificate=root.certificate.encoded,
    )
    assert decode_certificate(issued.encoded).value == issued.value
    _hashed_id8.cache_clear()
    assert issued.hashed_id8 == _hashed_id8(issued.encoded)  # seeded == computed from the bytes
    verify_certificate_signature(issued, root.certificate)
