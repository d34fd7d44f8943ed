"""Enrolment with the EA (ETSI TS 102 941 §6.2.3.2) on both curve families, and its refusals."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from tests.hsm_fixtures import require_tool
from tests.v2x_fixtures import FAMILY_NAMES, Pki, new_pki, response_code

from fleetid.authority.v2x.common import seal_response
from fleetid.crypto.signer import Signer, SoftwareSigner
from fleetid.crypto.v2xhash import signing_input
from fleetid.crypto.v2xkeys import generate_key
from fleetid.device.v2x import ItsStation, PendingRequest
from fleetid.errors import PolicyError, ProfileError, VerificationError
from fleetid.formats.etsi102941 import (
    encode_inner_ec_request,
    encrypt,
    encrypt_with_key,
    request_hash,
    sign_enrolment_request_pop,
    sign_pki_data,
)
from fleetid.formats.ieee1609 import decode, time64
from fleetid.formats.ieee1609.keys import rs_from_signature
from fleetid.policy.v2x import EC_SSP

pytestmark = pytest.mark.parametrize("family", FAMILY_NAMES)

EC_PERMISSIONS = {"appPermissions": [{"psid": 623, "ssp": ("bitmapSsp", EC_SSP)}]}


def craft(
    pki: Pki,
    station: ItsStation,
    *,
    new_key: Signer | None = None,
    pop_key: Signer | None = None,
    outer_key: Signer | None = None,
    its_id: bytes | None = None,
    attributes: dict[str, Any] | None = None,
    recipient: bytes | None = None,
) -> PendingRequest:
    """An EnrolmentRequestMessage built by hand, each part replaceable."""
    curve = pki.hierarchy.family.end_entity
    new_key = new_key or SoftwareSigner(generate_key(curve))
    inner = encode_inner_ec_request(
        its_id=station.its_id if its_id is None else its_id,
        verification_key=new_key.public_key(),
        requested_subject_attributes=attributes or EC_PERMISSIONS,
    )
    now = time64(pki.clock.now())
    pop = sign_enrolment_request_pop(inner, pop_key or new_key, generation_time=now)
    outer = sign_pki_data(
        ("enrolmentRequest", decode("Ieee1609Dot2Data", pop)),
        outer_key or station._canonical_key,
        generation_time=now,
    )
    ea = pki.ea.certificate
    sealed = encrypt(outer, recipient or ea.encoded)
    return PendingRequest(
        encoded=sealed.encoded, aes_key=sealed.aes_key, authority=ea, key=new_key, kind="ec"
    )


def test_initial_enrolment_issues_an_ec(family: str) -> None:
    pki = new_pki(family)
    station = pki.station()
    ec = station.enrol(pki.ea.handle_enrolment)
    assert ec.tbs["id"] == ("none", None)
    assert [p["psid"] for p in ec.tbs["appPermissions"]] == [623]
    assert ec.value["issuer"] == ("sha384AndDigest", pki.ea.certificate.hashed_id8)
    expected_curve = generate_key(pki.hierarchy.family.end_entity).curve.name
    assert ec.verification_key().curve.name == expected_curve
    assert pki.ea.counters.all() == {"enrolment.ok": 1}


def test_re_enrolment_is_signed_by_the_current_ec(family: str) -> None:
    pki = new_pki(family)
    station = pki.enrolled()
    first = station.enrolment_credential
    assert first is not None
    pending = station.enrolment_request()
    outer = decode("Ieee1609Dot2Data", _decrypt_at_ea(pki, pending.encoded))
    assert outer["content"][1]["signer"] == ("digest", first.hashed_id8)
    second = station.accept_enrolment(pending, pki.ea.handle_enrolment(pending.encoded))
    assert second.hashed_id8 != first.hashed_id8
    assert station.enrolment_credential == second


def _decrypt_at_ea(pki: Pki, message: bytes) -> bytes:
    from fleetid.formats.etsi102941 import decrypt_for_certificate

    plaintext, _ = decrypt_for_certificate(
        message, pki.ea._keys.decryption_key, pki.ea.certificate.encoded
    )
    return plaintext


def test_ec_signature_verifies_with_openssl(family: str, tmp_path: Path) -> None:
    openssl = require_tool("openssl")
    pki = new_pki(family)
    ec = pki.station().enrol(pki.ea.handle_enrolment)
    ea = pki.ea.certificate
    # IEEE 1609.2 §5.3.1: ECDSA-SHA-384 over H(tbs) ‖ H(EA certificate), the EA key on a 384 curve.
    (tmp_path / "msg").write_bytes(signing_input(ec.tbs_encoded, ea.encoded, "sha384"))
    r, s = rs_from_signature(ec.value["signature"])
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    (tmp_path / "sig").write_bytes(encode_dss_signature(r, s))
    (tmp_path / "key.pem").write_bytes(
        ea.verification_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    done = subprocess.run(
        [
            openssl,
            "dgst",
            "-sha384",
            "-verify",
            str(tmp_path / "key.pem"),
            "-signature",
            str(tmp_path / "sig"),
            str(tmp_path / "msg"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Verified OK" in done.stdout


def test_bad_pop_is_invalidsignature(family: str) -> None:
    pki = new_pki(family)
    station = pki.station()
    other = SoftwareSigner(generate_key(pki.hierarchy.family.end_entity))
    pending = craft(pki, station, pop_key=other)
    assert response_code(pending, pki.ea.handle_enrolment(pending.encoded)) == "invalidsignature"
    with pytest.raises(PolicyError, match="invalidsignature"):
        pending = craft(pki, station, pop_key=other)
        station.accept_enrolment(pending, pki.ea.handle_enrolment(pending.encoded))


def test_well_formed_request_passes_the_same_craft(family: str) -> None:
    # The control for the crafted negatives: untouched, the hand-built request is accepted.
    pki = new_pki(family)
    station = pki.station()
    pending = craft(pki, station)
    assert response_code(pending, pki.ea.handle_enrolment(pending.encoded)) == "ok"


def test_outer_signature_by_another_key_is_invalidsignature(family: str) -> None:
    pki = new_pki(family)
    station = pki.station()
    impostor = SoftwareSigner(generate_key(pki.hierarchy.family.end_entity))
    pending = craft(pki, station, outer_key=impostor)
    assert response_code(pending, pki.ea.handle_enrolment(pending.encoded)) == "invalidsignature"


def test_unknown_canonical_key_is_unknownits(family: str) -> None:
    pki = new_pki(family)
    station = pki.station(b"VIN-NOT-MADE-HERE", register=False)
    pending = station.enrolment_request()
    assert response_code(pending, pki.ea.handle_enrolment(pending.encoded)) == "unknownits"
    with pytest.raises(PolicyError, match="unknownits"):
        station.enrol(pki.ea.handle_enrolment)


def test_revoked_vehicle_cannot_enrol_or_re_enrol(family: str) -> None:
    pki = new_pki(family)
    station = pki.enrolled()
    assert pki.ea.revoke_vehicle(station.its_id) == 1
    with pytest.raises(PolicyError, match="deniedrequest"):
        station.enrol(pki.ea.handle_enrolment)
    fresh = pki.station(b"VIN-0002")
    pki.ea.revoke_vehicle(b"VIN-0002")
    with pytest.raises(PolicyError, match="unknownits"):
        fresh.enrol(pki.ea.handle_enrolment)


def test_wrong_recipient_raises(family: str) -> None:
    pki = new_pki(family)
    station = pki.station()
    pending = craft(pki, station, recipient=pki.aa.certificate.encoded)
    with pytest.raises(VerificationError, match="not addressed"):
        pki.ea.handle_enrolment(pending.encoded)


def test_outer_message_not_encrypted_raises(family: str) -> None:
    pki = new_pki(family)
    station = pki.station()
    pending = station.enrolment_request()
    plaintext = _decrypt_at_ea(pki, pending.encoded)
    with pytest.raises(ProfileError, match="encryptedData"):
        pki.ea.handle_enrolment(plaintext)


def test_replayed_request_is_deniedrequest(family: str) -> None:
    pki = new_pki(family)
    station = pki.station()
    pending = station.enrolment_request()
    first = pki.ea.handle_enrolment(pending.encoded)
    assert response_code(pending, first) == "ok"
    assert response_code(pending, pki.ea.handle_enrolment(pending.encoded)) == "deniedrequest"


def test_stale_request_is_deniedrequest(family: str) -> None:
    pki = new_pki(family)
    station = pki.station()
    pending = station.enrolment_request()
    pki.clock.advance(timedelta(minutes=6))
    assert response_code(pending, pki.ea.handle_enrolment(pending.encoded)) == "deniedrequest"


def test_an_ec_cannot_ask_for_app_permissions(family: str) -> None:
    pki = new_pki(family)
    station = pki.station()
    pending = craft(pki, station, attributes={"appPermissions": [{"psid": 36}]})
    assert response_code(pending, pki.ea.handle_enrolment(pending.encoded)) == "deniedpermissions"


def test_re_enrolment_itsid_must_be_the_current_ec(family: str) -> None:
    pki = new_pki(family)
    station = pki.enrolled()
    assert station.enrolment_credential is not None
    pending = craft(
        pki, station, outer_key=station._ec_key, its_id=b"VIN-0001"
    )  # signed as self by the EC key, not as its digest: the EA looks up a canonical key
    assert response_code(pending, pki.ea.handle_enrolment(pending.encoded)) == "invalidsignature"


# ------------------------------------------------------------------ the station checks the answer


def _ea_response(pki: Pki, pending: PendingRequest, body: dict[str, Any]) -> bytes:
    return seal_response(
        pki.ea._keys, ("enrolmentResponse", body), pending.aes_key, pki.clock.now()
    )


def test_response_for_another_request_is_refused(family: str) -> None:
    pki = new_pki(family)
    station = pki.station()
    pending = station.enrolment_request()
    forged = _ea_response(pki, pending, {"requestHash": bytes(16), "responseCode": "deniedrequest"})
    with pytest.raises(VerificationError, match="another request"):
        station.accept_enrolment(pending, forged)


def test_ok_without_certificate_is_refused(family: str) -> None:
    pki = new_pki(family)
    station = pki.station()
    pending = station.enrolment_request()
    forged = _ea_response(
        pki, pending, {"requestHash": request_hash(pending.encoded), "responseCode": "ok"}
    )
    with pytest.raises(ProfileError, match="ok"):
        station.accept_enrolment(pending, forged)


def test_response_signed_as_self_is_refused(family: str) -> None:
    pki = new_pki(family)
    station = pki.station()
    pending = station.enrolment_request()
    body = {"requestHash": request_hash(pending.encoded), "responseCode": "deniedrequest"}
    signed = sign_pki_data(
        ("enrolmentResponse", body), pki.ea._keys.signer, generation_time=time64(pki.clock.now())
    )
    with pytest.raises(ProfileError, match="signer self"):
        station.accept_enrolment(pending, encrypt_with_key(signed, pending.aes_key))


def test_response_signed_by_another_authority_is_refused(family: str) -> None:
    pki = new_pki(family)
    station = pki.station()
    pending = station.enrolment_request()
    body = {"requestHash": request_hash(pending.encoded), "responseCode": "deniedrequest"}
    signed = sign_pki_data(
        ("enrolmentResponse", body),
        pki.aa._keys.signer,
        generation_time=time64(pki.clock.now()),
        signer_certificate=pki.aa.certificate.encoded,
    )
    with pytest.raises(VerificationError, match="another certificate"):
        station.accept_enrolment(pending, encrypt_with_key(signed, pending.aes_key))


def test_tampered_response_is_refused(family: str) -> None:
    pki = new_pki(family)
    station = pki.station()
    pending = station.enrolment_request()
    response = bytearray(pki.ea.handle_enrolment(pending.encoded))
    response[-1] ^= 1
    with pytest.raises(VerificationError):
        station.accept_enrolment(pending, bytes(response))
