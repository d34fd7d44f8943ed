"""The strict attestation-object decoder, against the published registrations."""

from __future__ import annotations

import pytest
from fido2 import cbor
from tests.fido_fixtures import Registration, registration, registrations

from fleetid.errors import EncodingError
from fleetid.formats.webauthn import (
    FLAG_AT,
    b64url_decode,
    b64url_encode,
    encode_attestation_object,
    parse_attestation_object,
)


@pytest.mark.parametrize("vector", registrations(), ids=lambda v: v.name)
def test_published_objects_are_canonical_and_round_trip(vector: Registration) -> None:
    parts = parse_attestation_object(vector.attestation_object)
    top = vector.decoded
    assert parts.fmt == top["fmt"] and parts.auth_data == top["authData"]
    assert parts.flags & FLAG_AT
    assert encode_attestation_object(parts.fmt, parts.statement, parts.auth_data) == (
        vector.attestation_object
    )
    assert parts.auth_data.endswith(parts.credential_public_key)


def test_unsorted_map_is_refused() -> None:
    top = registration("packed").decoded
    unsorted = (
        b"\xa3"
        + cbor.encode("authData")
        + cbor.encode(top["authData"])
        + cbor.encode("fmt")
        + cbor.encode(top["fmt"])
        + cbor.encode("attStmt")
        + cbor.encode(top["attStmt"])
    )
    assert cbor.decode(unsorted) == top  # the library reads it
    with pytest.raises(EncodingError, match="canonical"):
        parse_attestation_object(unsorted)


def test_non_canonical_credential_key_is_refused() -> None:
    """The COSE key's map with a non-minimal integer: the authData bytes no longer re-encode."""
    top = registration("packed").decoded
    auth_data = top["authData"]
    key = cbor.encode(cbor.decode(auth_data[55 + 64 :]))  # 64-byte credential id
    assert auth_data.endswith(key) and key[1:2] == b"\x01"  # kty label 1, minimal
    stretched = auth_data[: -len(key)] + key[:1] + b"\x18\x01" + key[2:]
    with pytest.raises(EncodingError):
        parse_attestation_object(encode_attestation_object("packed", top["attStmt"], stretched))


@pytest.mark.parametrize(
    "data",
    [b"", b"\xff", cbor.encode([1, 2]), cbor.encode({"fmt": 1, "attStmt": {}, "authData": b""})],
)
def test_garbage_is_refused(data: bytes) -> None:
    with pytest.raises(EncodingError):
        parse_attestation_object(data)


def test_short_authenticator_data_is_refused() -> None:
    with pytest.raises(EncodingError, match="authenticator data"):
        parse_attestation_object(encode_attestation_object("packed", {}, b"\x00" * 36))


def test_base64url_round_trip_and_strictness() -> None:
    assert b64url_decode(b64url_encode(b"\xfb\xff")) == b"\xfb\xff"
    assert b64url_encode(b"\xfb\xff") == "-_8"
    for bad in ("***", "+/8", "a b"):
        with pytest.raises(EncodingError):
            b64url_decode(bad)
