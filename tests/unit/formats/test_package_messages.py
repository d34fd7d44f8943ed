"""The signed messages of package download: layout, round trips and malformed input."""

from __future__ import annotations

import hashlib

import pytest

from fleetid.errors import EncodingError
from fleetid.formats.package_messages import (
    BoundPackage,
    Notification,
    attestation_challenge,
    discovery_reference,
    hash_confirmation_code,
    server_signed1,
    smdp_signed2,
)

TID = bytes(range(16))


def test_server_signed1_is_the_four_fields_in_order() -> None:
    data = server_signed1(
        transaction_id=TID,
        euicc_challenge=b"E" * 16,
        address="http://a",
        server_challenge=b"S" * 16,
    )
    assert data == (
        bytes.fromhex("3040") + b"\x80\x10" + TID + b"\x81\x10" + b"E" * 16
        + b"\x82\x08http://a" + b"\x83\x10" + b"S" * 16
    )  # fmt: skip


def test_the_signed_texts_differ_with_every_field() -> None:
    base = smdp_signed2(transaction_id=TID, event_id="e1", cc_required=False)
    assert base != smdp_signed2(transaction_id=TID, event_id="e1", cc_required=True)
    assert base != smdp_signed2(transaction_id=TID, event_id="e2", cc_required=False)
    assert base != smdp_signed2(transaction_id=bytes(16), event_id="e1", cc_required=False)


def test_hash_cc_is_sgp22_s_double_hash() -> None:
    expected = hashlib.sha256(hashlib.sha256(b"1234").digest() + TID).digest()
    assert hash_confirmation_code("1234", TID) == expected
    assert hash_confirmation_code("1234", bytes(16)) != expected


def test_the_discovery_reference_hides_the_serial() -> None:
    ref = discovery_reference("SN-0001")
    assert len(ref) == 64 and "SN-0001" not in ref
    assert ref != discovery_reference("SN-0002")
    assert attestation_challenge(TID, b"S" * 16) != attestation_challenge(TID, b"T" * 16)


def _bound() -> BoundPackage:
    return BoundPackage(
        transaction_id=TID,
        event_id="ab" * 16,
        kind="configuration",
        point=b"\x04" + bytes(64),
        nonce=bytes(12),
        ciphertext=b"c" * 40,
        signature=b"sig",
    )


def test_a_bound_package_round_trips_and_signs_its_fields_only() -> None:
    bound = _bound()
    assert BoundPackage.decode(bound.encode()) == bound
    assert bound.tbs() in bound.encode() and b"sig" not in bound.tbs()


def test_a_notification_round_trips() -> None:
    note = Notification(transaction_id=TID, event_id="e", sequence=7, success=False, signature=b"s")
    assert Notification.decode(note.encode()) == note


@pytest.mark.parametrize(
    "data",
    [b"", b"\x30\x00", b"\x31\x02\x04\x00", _bound().encode() + b"\x00", _bound().encode()[:-1]],
    ids=["empty", "no-fields", "not-sequence", "trailing", "truncated"],
)
def test_malformed_bound_packages_are_encoding_errors(data: bytes) -> None:
    with pytest.raises(EncodingError):
        BoundPackage.decode(data)


def test_a_notification_with_a_bad_result_byte_is_refused() -> None:
    good = Notification(transaction_id=TID, event_id="e", sequence=1, success=True).encode()
    bad = good.replace(b"\x83\x01\x01", b"\x83\x01\x02")
    with pytest.raises(EncodingError):
        Notification.decode(bad)
    with pytest.raises(EncodingError):
        Notification.decode(_bound().encode())
