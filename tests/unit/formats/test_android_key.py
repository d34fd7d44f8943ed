"""The Android key description, from the published Pixel 8a registration and built here."""

from __future__ import annotations

import pytest
from cryptography import x509
from tests.fido_fixtures import authorization_list, key_description, registration

from fleetid.errors import EncodingError
from fleetid.formats.android_key import (
    ANDROID_KEY_DESCRIPTION_OID,
    KM_ORIGIN_GENERATED,
    KM_PURPOSE_SIGN,
    TAG_ALL_APPLICATIONS,
    TAG_ORIGIN,
    TAG_PURPOSE,
    SecurityLevel,
    decode_key_description,
)


def test_pixel_8a_key_description() -> None:
    vector = registration("android-key")
    leaf = x509.load_der_x509_certificate(vector.decoded["attStmt"]["x5c"][0])
    value = leaf.extensions.get_extension_for_oid(
        x509.ObjectIdentifier(ANDROID_KEY_DESCRIPTION_OID)
    ).value
    assert isinstance(value, x509.UnrecognizedExtension)
    description = decode_key_description(value.value)
    assert description.attestation_version == 300  # KeyMint 3
    assert description.attestation_security_level == SecurityLevel.TRUSTED_ENVIRONMENT
    assert description.attestation_challenge == vector.client_data_hash
    hardware = description.hardware_enforced
    assert hardware.integer(TAG_ORIGIN) == KM_ORIGIN_GENERATED
    assert hardware.integer_set(TAG_PURPOSE) == {KM_PURPOSE_SIGN}
    assert not hardware.has(TAG_ALL_APPLICATIONS)
    assert 704 in hardware.fields  # rootOfTrust, kept by number


def test_built_description_decodes() -> None:
    listed = authorization_list(purposes=(2, 3), origin=0, all_applications=True)
    description = decode_key_description(key_description(b"c" * 32, software=listed))
    assert description.software_enforced.integer_set(TAG_PURPOSE) == {2, 3}
    assert description.software_enforced.has(TAG_ALL_APPLICATIONS)
    assert description.hardware_enforced.integer(TAG_ORIGIN) == 0


@pytest.mark.parametrize(
    "der",
    [
        b"",
        b"\x30\x00",
        key_description(b"c" * 32)[:-1],
        key_description(b"c" * 32) + b"\x00",
        key_description(b"c", hardware=b"\x02\x01\x00"),  # an untagged field in a list
        key_description(b"c", hardware=authorization_list() + authorization_list()),  # repeated
    ],
)
def test_malformed_descriptions_are_refused(der: bytes) -> None:
    with pytest.raises(EncodingError):
        decode_key_description(der)


def test_a_field_of_the_wrong_type_is_refused() -> None:
    description = decode_key_description(
        key_description(b"c", hardware=b"\xbf\x85\x3e\x03\x04\x01\x00")  # [702] OCTET STRING
    )
    with pytest.raises(EncodingError):
        description.hardware_enforced.integer(TAG_ORIGIN)
