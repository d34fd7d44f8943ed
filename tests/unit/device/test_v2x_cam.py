"""Signed CAMs (psid 36) from the current AT, and the receiver's checks."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from tests.v2x_fixtures import FAMILY_NAMES, Pki, mutate, new_pki

from fleetid.authority.v2x import PSID_DENM
from fleetid.device.v2x import CamReceiver, ItsStation
from fleetid.errors import PolicyError, ProfileError, VerificationError
from fleetid.formats.ieee1609 import open_signed_data, sign_data, time64, unsecured

pytestmark = pytest.mark.parametrize("family", FAMILY_NAMES)


def vehicle(pki: Pki, its_id: bytes = b"VIN-0001", tickets: int = 3, **kw: object) -> ItsStation:
    station = pki.enrolled(its_id, **kw)
    station.request_tickets(tickets, pki.aa.handle_authorization)
    return station


def receiver(pki: Pki) -> CamReceiver:
    return CamReceiver(pki.hierarchy.trust_store(), pki.clock)


def test_neighbour_verifies_cams(family: str) -> None:
    pki = new_pki(family)
    sender, rx = vehicle(pki), receiver(pki)
    for i in range(5):
        cam = rx.verify(sender.sign_cam(b"cam %d" % i))
        assert cam.payload == b"cam %d" % i
        pki.clock.advance(timedelta(milliseconds=100))


def test_certificate_then_digest_one_in_n(family: str) -> None:
    pki = new_pki(family)
    sender = vehicle(pki, certificate_every=4, certificate_interval=timedelta(seconds=10))
    kinds = []
    for _ in range(9):
        kinds.append(open_signed_data(sender.sign_cam(b"x")).signer[0])
        pki.clock.advance(timedelta(milliseconds=100))
    assert kinds == ["certificate", "digest", "digest", "digest"] * 2 + ["certificate"]


def test_certificate_again_after_one_second(family: str) -> None:
    pki = new_pki(family)
    sender = vehicle(pki, certificate_every=100)
    first = open_signed_data(sender.sign_cam(b"x")).signer[0]
    pki.clock.advance(timedelta(milliseconds=500))
    second = open_signed_data(sender.sign_cam(b"x")).signer[0]
    pki.clock.advance(timedelta(milliseconds=600))
    third = open_signed_data(sender.sign_cam(b"x")).signer[0]
    assert (first, second, third) == ("certificate", "digest", "certificate")


def test_pseudonym_rotates_every_period(family: str) -> None:
    pki = new_pki(family)
    sender, rx = vehicle(pki, tickets=3), receiver(pki)
    signers = []
    for _ in range(6):
        cam = rx.verify(sender.sign_cam(b"x"))
        assert cam.signer_was_certificate  # a new AT always goes out with its certificate
        signers.append(cam.signer_id)
        pki.clock.advance(timedelta(minutes=5))
    assert len(set(signers[:3])) == 3  # each AT serves one period
    assert signers[3:] == [signers[2]] * 3  # no fresh AT held: the last one stays in use
    assert [t.hashed_id8 for t, _ in sender.tickets] == [signers[2]]
    assert sender.retired_tickets == 2


def test_no_ticket_no_cam(family: str) -> None:
    pki = new_pki(family)
    with pytest.raises(PolicyError):
        pki.enrolled().sign_cam(b"x")


def test_expired_tickets_are_not_used(family: str) -> None:
    pki = new_pki(family)
    sender = vehicle(pki, tickets=1)
    pki.clock.advance(timedelta(days=8))
    with pytest.raises(PolicyError):
        sender.sign_cam(b"x")


def test_replayed_cam_is_refused(family: str) -> None:
    pki = new_pki(family)
    sender, rx = vehicle(pki), receiver(pki)
    cam = sender.sign_cam(b"x")
    rx.verify(cam)
    with pytest.raises(VerificationError, match="replayed"):
        rx.verify(cam)


def test_old_cam_is_refused(family: str) -> None:
    pki = new_pki(family)
    sender, rx = vehicle(pki), receiver(pki)
    cam = sender.sign_cam(b"x")
    pki.clock.advance(timedelta(seconds=3))
    with pytest.raises(VerificationError, match="too old"):
        rx.verify(cam)


def test_future_cam_is_refused(family: str) -> None:
    pki = new_pki(family)
    sender = vehicle(pki)
    lagging = CamReceiver(pki.hierarchy.trust_store(), _Lagging(pki, timedelta(seconds=1)))
    with pytest.raises(VerificationError, match="future"):
        lagging.verify(sender.sign_cam(b"x"))
    in_time = CamReceiver(pki.hierarchy.trust_store(), _Lagging(pki, timedelta(milliseconds=100)))
    pki.clock.advance(timedelta(seconds=2))
    in_time.verify(sender.sign_cam(b"y"))


class _Lagging:
    def __init__(self, pki: Pki, lag: timedelta) -> None:
        self._pki, self._lag = pki, lag

    def now(self) -> datetime:
        return self._pki.clock.now() - self._lag


def test_digest_of_an_unseen_at_is_refused(family: str) -> None:
    pki = new_pki(family)
    sender, rx = vehicle(pki), receiver(pki)
    sender.sign_cam(b"heard by someone else")  # the certificate went out, not to rx
    pki.clock.advance(timedelta(milliseconds=100))
    with pytest.raises(VerificationError, match="not seen"):
        rx.verify(sender.sign_cam(b"x"))


def test_tampered_payload_is_refused(family: str) -> None:
    pki = new_pki(family)
    sender, rx = vehicle(pki), receiver(pki)
    cam = sender.sign_cam(b"speed 50")

    def edit(value: dict) -> None:  # type: ignore[type-arg]
        value["content"][1]["tbsData"]["payload"]["data"] = unsecured(b"speed 90")

    with pytest.raises(VerificationError, match="does not verify"):
        rx.verify(mutate("Ieee1609Dot2Data", cam, edit))


def test_wrong_psid_is_refused(family: str) -> None:
    pki = new_pki(family)
    sender, rx = vehicle(pki), receiver(pki)
    ticket, key = sender.current_ticket()
    denm = sign_data(
        {"data": unsecured(b"x")},
        {"psid": PSID_DENM, "generationTime": time64(pki.clock.now())},
        key,
        signer_identifier=("certificate", [ticket.value]),
        signer_certificate=ticket.encoded,
    )
    with pytest.raises(ProfileError, match="psid"):
        rx.verify(denm)


def test_at_without_cam_permission_is_refused(family: str) -> None:
    pki = new_pki(family)
    station = pki.enrolled()
    pending = station.authorization_request(psids=(PSID_DENM,))
    response = pki.aa.handle_authorization(pending.encoded)
    with pytest.raises(VerificationError, match="psids"):
        station.accept_authorization(pending, response)  # the station itself notices
    # Signed anyway with that AT, a CAM is refused by the receiver.
    ticket = station._open_response(pending, response, "authorizationResponse")
    cam = sign_data(
        {"data": unsecured(b"x")},
        {"psid": 36, "generationTime": time64(pki.clock.now())},
        pending.key,
        signer_identifier=("certificate", [ticket.value]),
        signer_certificate=ticket.encoded,
    )
    with pytest.raises(VerificationError, match="psids"):
        receiver(pki).verify(cam)


def test_at_of_a_revoked_aa_is_refused_through_the_crl(family: str) -> None:
    pki = new_pki(family)
    sender = vehicle(pki)
    rx = receiver(pki)
    rx.verify(sender.sign_cam(b"before"))
    pki.clock.advance(timedelta(milliseconds=100))
    rx._trust.apply_crl(pki.hierarchy.revoke_ca(pki.aa.certificate.hashed_id8))
    with pytest.raises(VerificationError, match="revoked"):
        rx.verify(sender.sign_cam(b"after, by digest"))
    pki.clock.advance(timedelta(seconds=2))
    with pytest.raises(VerificationError, match="revoked"):
        rx.verify(sender.sign_cam(b"after, by certificate"))


def test_at_from_an_untrusted_aa_is_refused(family: str) -> None:
    pki, elsewhere = new_pki(family), new_pki(family)
    stranger = vehicle(elsewhere)
    with pytest.raises(VerificationError):
        receiver(pki).verify(stranger.sign_cam(b"x"))
