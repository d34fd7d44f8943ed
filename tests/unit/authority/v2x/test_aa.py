"""Authorization tickets from the AA, validated by the EA (TS 102 941 §6.2.3.3, §6.2.3.4)."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import inspect, select
from tests.v2x_fixtures import FAMILY_NAMES, Pki, new_pki, response_code

from fleetid.authority.v2x import PSID_CAM
from fleetid.crypto.signer import Signer
from fleetid.crypto.v2xkeys import compressed_point
from fleetid.device.v2x import ItsStation, PendingRequest
from fleetid.errors import NotFoundError, PolicyError, ProfileError, VerificationError
from fleetid.formats.etsi102941 import (
    decrypt_for_certificate,
    encrypt,
    key_tag,
    shared_at_request_hash,
    sign_external_payload,
    sign_pki_data,
)
from fleetid.formats.ieee1609 import datetime_from_time32, decode, encode, time32, time64
from fleetid.formats.ieee1609.keys import verification_key_value
from fleetid.formats.ieee1609.validity import validity_bounds
from fleetid.store.schema import metadata
from fleetid.store.v2x_tables import AA_TABLES, aa_issued_tickets

pytestmark = pytest.mark.parametrize("family", FAMILY_NAMES)


def craft(
    pki: Pki,
    station: ItsStation,
    *,
    key_tag_override: bytes | None = None,
    signed_shared: dict[str, Any] | None = None,
    ea_id: bytes | None = None,
    psids: tuple[int, ...] = (PSID_CAM,),
    pop_key: Signer | None = None,
    encrypt_ec_signature: bool = True,
) -> PendingRequest:
    """An AuthorizationRequestMessageWithPop built by hand, each part replaceable.

    ``signed_shared`` is a SharedAtRequest the EC signs instead of the one sent.
    """
    ec, ec_key = station.enrolment_credential, station._ec_key
    assert ec is not None and ec_key is not None
    at_key = station._keys.signing_key(pki.hierarchy.family.end_entity)
    public_keys = {"verificationKey": verification_key_value(at_key.public_key())}
    hmac_key = os.urandom(32)
    shared = {
        "eaId": ea_id or pki.ea.certificate.hashed_id8,
        "keyTag": key_tag_override or key_tag(hmac_key, public_keys),
        "certificateFormat": 1,
        "requestedSubjectAttributes": {"appPermissions": [{"psid": p} for p in psids]},
    }
    now = time64(pki.clock.now())
    ec_signature = sign_external_payload(
        shared_at_request_hash(signed_shared or shared), ec_key, ec.encoded, generation_time=now
    )
    if encrypt_ec_signature:
        wrapped = encrypt(ec_signature, pki.ea.certificate.encoded).encoded
        choice = "encryptedEcSignature"
    else:
        wrapped, choice = ec_signature, "ecSignature"
    inner = {
        "publicKeys": public_keys,
        "hmacKey": hmac_key,
        "sharedAtRequest": shared,
        "ecSignature": (choice, decode("Ieee1609Dot2Data", wrapped)),
    }
    body = sign_pki_data(("authorizationRequest", inner), pop_key or at_key, generation_time=now)
    aa = pki.aa.certificate
    sealed = encrypt(body, aa.encoded)
    return PendingRequest(
        encoded=sealed.encoded, aes_key=sealed.aes_key, authority=aa, key=at_key, kind="at"
    )


def ask(pki: Pki, pending: PendingRequest) -> str:
    return response_code(pending, pki.aa.handle_authorization(pending.encoded))


# ------------------------------------------------------------------ issuing


def test_at_issued_without_device_identifier(family: str) -> None:
    pki = new_pki(family)
    station = pki.enrolled()
    [ticket] = station.request_tickets(1, pki.aa.handle_authorization)
    assert ticket.tbs["id"] == ("none", None)
    assert ticket.tbs["appPermissions"] == [{"psid": 36, "ssp": ("bitmapSsp", b"\x01\x00\x00")}]
    assert ticket.value["issuer"] == ("sha384AndDigest", pki.aa.certificate.hashed_id8)
    start, end = validity_bounds(ticket)
    issued = datetime_from_time32(start)
    assert (issued.minute, issued.second) == (0, 0)
    assert end - start == 7 * 24 * 3600
    # Nothing of the EC or the vehicle is in the AT.
    assert station.enrolment_credential is not None
    for marker in (station.enrolment_credential.hashed_id8, station.its_id):
        assert marker not in ticket.encoded
    assert pki.aa.counters.all() == {"authorization.ok": 1}
    assert pki.ea.counters.all() == {"enrolment.ok": 1, "validation.ok": 1}


def test_at_validity_start_is_rounded_to_the_epoch(family: str) -> None:
    pki = new_pki(family)
    pki.clock.advance(timedelta(minutes=17, seconds=23))
    station = pki.enrolled()
    [ticket] = station.request_tickets(1, pki.aa.handle_authorization)
    start, _ = validity_bounds(ticket)
    now = time32(pki.clock.now())
    assert start <= now < start + 3600
    assert start != now
    issued = datetime_from_time32(start)
    assert (issued.minute, issued.second) == (0, 0)


def test_one_request_per_at_with_fresh_keys(family: str) -> None:
    pki = new_pki(family)
    station = pki.enrolled()
    tickets = station.request_tickets(3, pki.aa.handle_authorization)
    keys = {compressed_point(t.verification_key()) for t in tickets}
    assert len(keys) == 3
    with pki.aa_engine.connect() as conn:
        stored = {bytes(r.at_id) for r in conn.execute(select(aa_issued_tickets))}
    assert stored == {t.hashed_id8 for t in tickets}


def test_request_without_pop_and_with_at_encryption_key(family: str) -> None:
    pki = new_pki(family)
    station = pki.enrolled(at_encryption_key=True)
    pending = station.authorization_request(pop=False)
    ticket = station.accept_authorization(pending, pki.aa.handle_authorization(pending.encoded))
    assert ticket.encryption_key() is not None


def test_handmade_request_is_accepted(family: str) -> None:
    # The control for the crafted negatives below.
    pki = new_pki(family)
    assert ask(pki, craft(pki, pki.enrolled())) == "ok"


def test_aa_stores_nothing_naming_the_ec(family: str) -> None:
    pki = new_pki(family)
    station = pki.enrolled()
    station.request_tickets(2, pki.aa.handle_authorization)
    tables = set(inspect(pki.aa_engine).get_table_names())
    assert set(metadata.tables) <= tables  # one schema (one Alembic history) for every database
    assert station.enrolment_credential is not None
    holding = set()
    with pki.aa_engine.connect() as conn:
        for table in metadata.tables.values():
            for row in conn.execute(select(table)):
                holding.add(table.name)
                for value in row:
                    if isinstance(value, bytes):
                        assert station.enrolment_credential.hashed_id8 not in value
                        assert station.its_id not in value
    # Rows only in the AA's own tables, and the store's counters seeded by the migrations.
    assert holding - {t.name for t in AA_TABLES} == {"counters"}
    assert {"v2x_aa_issued_tickets", "v2x_aa_counters"} <= holding


def test_ea_sees_no_at_key_and_aa_sees_no_ec(family: str) -> None:
    pki = new_pki(family)
    station = pki.enrolled()
    ec = station.enrolment_credential
    assert ec is not None
    seen_by_ea: list[bytes] = []

    def spy(message: bytes) -> bytes:
        seen_by_ea.append(message)
        return pki.ea.handle_authorization_validation(message)

    pki.aa._ea_transport = lambda _url, message: spy(message)
    pending = station.authorization_request()
    aa_plain, _ = decrypt_for_certificate(
        pending.encoded, pki.aa._keys.decryption_key, pki.aa.certificate.encoded
    )
    ticket = station.accept_authorization(pending, pki.aa.handle_authorization(pending.encoded))
    at_point = compressed_point(ticket.verification_key())[1:]
    [validation] = seen_by_ea
    ea_plain, _ = decrypt_for_certificate(
        validation, pki.ea._keys.decryption_key, pki.ea.certificate.encoded
    )
    request = decode("Ieee1609Dot2Data", ea_plain)
    inner_signature = request["content"][1]["tbsData"]["payload"]["data"]
    ec_sig, _ = decrypt_for_certificate(
        encode(
            "Ieee1609Dot2Data",
            decode("EtsiTs102941Data", inner_signature["content"][1])["content"][1]["ecSignature"][
                1
            ],
        ),
        pki.ea._keys.decryption_key,
        pki.ea.certificate.encoded,
    )
    for what_the_ea_sees in (ea_plain, ec_sig):
        assert at_point not in what_the_ea_sees
    assert ec.hashed_id8 in ec_sig  # the EA does learn the EC (that is its job)
    assert ec.hashed_id8 not in aa_plain and ec.encoded not in aa_plain


# ------------------------------------------------------------------ refusals


def test_tampered_key_tag_is_keysdontmatch(family: str) -> None:
    pki = new_pki(family)
    pending = craft(pki, pki.enrolled(), key_tag_override=bytes(16))
    assert ask(pki, pending) == "its-aa-keysdontmatch"


def test_ec_signature_not_covering_the_shared_request(family: str) -> None:
    pki = new_pki(family)
    other = {
        "eaId": pki.ea.certificate.hashed_id8,
        "keyTag": bytes(16),
        "certificateFormat": 1,
        "requestedSubjectAttributes": {"appPermissions": [{"psid": 36}]},
    }
    pending = craft(pki, pki.enrolled(), signed_shared=other)
    assert ask(pki, pending) == "invalidsignature"
    assert pki.ea.counters.all()["validation.invalidsignature"] == 1


def test_revoked_ec_is_refused_at_validation(family: str) -> None:
    pki = new_pki(family)
    station = pki.enrolled()
    assert station.enrolment_credential is not None
    station.request_tickets(1, pki.aa.handle_authorization)
    pki.ea.revoke_ec(station.enrolment_credential.hashed_id8)
    pending = station.authorization_request()
    assert ask(pki, pending) == "deniedpermissions"
    assert pki.ea.counters.all()["validation.deniedrequest"] == 1
    with pytest.raises(PolicyError):
        station.request_tickets(1, pki.aa.handle_authorization)


def test_revoking_an_ec_the_ea_never_issued_is_not_found(family: str) -> None:
    # The record the request names does not exist: NotFoundError, not a policy refusal.
    pki = new_pki(family)
    station = pki.enrolled()
    with pytest.raises(NotFoundError, match="no EC") as refused:
        pki.ea.revoke_ec(b"\x00" * 8)
    assert not isinstance(refused.value, PolicyError)
    assert ask(pki, station.authorization_request()) == "ok"  # nothing else was revoked


def test_unknown_ec_is_unknownits(family: str) -> None:
    pki = new_pki(family)
    elsewhere = new_pki(family)
    station = elsewhere.enrolled()  # an EC from another PKI's EA
    pending = craft(pki, station)
    assert ask(pki, pending) == "unknownits"


def test_replayed_at_request_is_refused(family: str) -> None:
    pki = new_pki(family)
    pending = craft(pki, pki.enrolled())
    assert ask(pki, pending) == "ok"
    assert ask(pki, pending) == "its-aa-outofsyncrequest"


def test_stale_at_request_is_refused(family: str) -> None:
    pki = new_pki(family)
    pending = craft(pki, pki.enrolled())
    pki.clock.advance(timedelta(minutes=6))
    assert ask(pki, pending) == "its-aa-outofsyncrequest"


def test_bad_at_pop_is_invalidsignature(family: str) -> None:
    pki = new_pki(family)
    station = pki.enrolled()
    other = station._keys.signing_key(pki.hierarchy.family.end_entity)
    assert ask(pki, craft(pki, station, pop_key=other)) == "invalidsignature"


def test_unknown_ea_is_refused(family: str) -> None:
    pki = new_pki(family)
    assert ask(pki, craft(pki, pki.enrolled(), ea_id=bytes(8))) == "its-aa-unknownea"


def test_unencrypted_ec_signature_is_refused(family: str) -> None:
    pki = new_pki(family)
    assert ask(pki, craft(pki, pki.enrolled(), encrypt_ec_signature=False)) != "ok"
    assert pki.ea.counters.all()["validation.badcontenttype"] == 1


def test_at_cannot_ask_for_pki_permissions(family: str) -> None:
    pki = new_pki(family)
    assert ask(pki, craft(pki, pki.enrolled(), psids=(623,))) == "deniedpermissions"


def test_revoked_aa_is_refused_by_the_ea(family: str) -> None:
    pki = new_pki(family)
    station = pki.enrolled()
    crl = pki.hierarchy.revoke_ca(pki.aa.certificate.hashed_id8)
    pki.ea._trust.apply_crl(crl)
    assert ask(pki, craft(pki, station)) == "invalidaa"


def test_unreachable_ea(family: str) -> None:
    pki = new_pki(family)
    station = pki.enrolled()

    def down(_url: str, _message: bytes) -> bytes:
        raise ConnectionRefusedError("EA down")

    pki.aa._ea_transport = down
    assert ask(pki, craft(pki, station)) == "aa-ea-cantreachea"


def test_request_not_encrypted_or_to_another_recipient_raises(family: str) -> None:
    pki = new_pki(family)
    station = pki.enrolled()
    pending = station.authorization_request()
    plaintext, _ = decrypt_for_certificate(
        pending.encoded, pki.aa._keys.decryption_key, pki.aa.certificate.encoded
    )
    with pytest.raises(ProfileError):
        pki.aa.handle_authorization(plaintext)
    with pytest.raises(VerificationError):
        pki.aa.handle_authorization(encrypt(plaintext, pki.ea.certificate.encoded).encoded)


def test_station_refuses_at_for_another_key(family: str) -> None:
    pki = new_pki(family)
    station = pki.enrolled()
    first = station.authorization_request()
    second = station.authorization_request()
    response = pki.aa.handle_authorization(second.encoded)
    with pytest.raises(VerificationError):
        station.accept_authorization(first, response)  # another AES key: does not even open


def test_enrol_first(family: str) -> None:
    pki = new_pki(family)
    with pytest.raises(PolicyError, match="enrol"):
        pki.station().authorization_request()


def test_key_tag_matches_an_independent_coer_of_the_keys(family: str) -> None:
    """keyTag = HMAC-SHA256(hmacKey, COER keys)[:16], COER written out by hand (X.696 §20, §23):
    a CHOICE is its context tag 0x80|index, EccP256CurvePoint compressed-y-0/1 is index 2/3, and
    PublicEncryptionKey is the AES-CCM enumeration (0) then its BasePublicEncryptionKey."""
    import hashlib
    import hmac as std_hmac

    from fleetid.crypto.v2xkeys import generate_key
    from fleetid.formats.ieee1609.keys import encryption_key_value

    pki = new_pki(family)
    curve = pki.hierarchy.family.end_entity
    index = 0 if curve == "nistP256" else 1
    signing, encryption = generate_key(curve).public_key(), generate_key(curve).public_key()
    hmac_key = bytes(range(32))

    def point(key: Any) -> bytes:
        sec1 = compressed_point(key)
        return bytes([0x80 | (2 if sec1[0] == 2 else 3)]) + sec1[1:]

    by_hand = bytes([0x80 | index]) + point(signing)
    keys = {"verificationKey": verification_key_value(signing)}
    expected = std_hmac.new(hmac_key, by_hand, hashlib.sha256).digest()[:16]
    assert key_tag(hmac_key, keys) == expected
    keys["encryptionKey"] = encryption_key_value(encryption)
    by_hand += b"\x00" + bytes([0x80 | index]) + point(encryption)
    expected = std_hmac.new(hmac_key, by_hand, hashlib.sha256).digest()[:16]
    assert key_tag(hmac_key, keys) == expected


def test_an_at_from_an_aa_younger_than_one_epoch_starts_with_the_aa(family: str) -> None:
    """Rounding the AT start down to the epoch must not put it before its issuer's start
    (TS 103 097 §7.2.1); a relying party would refuse such an AT as outliving its issuer."""
    from datetime import UTC, datetime

    from tests.v2x_fixtures import memory_engine

    from fleetid.authority.v2x import FAMILIES
    from fleetid.authority.v2x.hierarchy import build_hierarchy
    from fleetid.clock import ManualClock
    from fleetid.device.v2x import CamReceiver

    clock = ManualClock(datetime(2027, 3, 4, 10, 17, 23, tzinfo=UTC))  # mid-epoch
    hierarchy = build_hierarchy(
        family=FAMILIES[family], clock=clock, ea_engine=memory_engine(), aa_engine=memory_engine()
    )
    pki = Pki(
        hierarchy=hierarchy, clock=clock, ea_engine=memory_engine(), aa_engine=memory_engine()
    )
    station = pki.enrolled(b"VIN-EARLY")
    station.request_tickets(1, pki.aa.handle_authorization)
    ticket, _ = station.tickets[0]
    assert validity_bounds(ticket)[0] == validity_bounds(pki.aa.certificate)[0]
    assert (
        CamReceiver(hierarchy.trust_store(), clock).verify(station.sign_cam(b"x")).payload == b"x"
    )
    # An hour on, ATs are back to the epoch-rounded start (not the AA's).
    clock.advance(timedelta(hours=1))
    station.request_tickets(1, pki.aa.handle_authorization)
    later, _ = station.tickets[-1]
    assert validity_bounds(later)[0] > validity_bounds(pki.aa.certificate)[0]
    assert datetime_from_time32(validity_bounds(later)[0]).minute == 0
