"""Pseudonym rotation retires each AT after its period and deletes its keys: in software, and on
the secure element (DELETE KEY), where a vehicle's life of rotations must fit 127 key slots."""

from __future__ import annotations

from datetime import timedelta

import pytest
from tests.v2x_fixtures import FAMILY_NAMES, Pki, new_pki

from fleetid.crypto.signer import SoftwareSigner
from fleetid.crypto.v2xkeys import CURVES, generate_key
from fleetid.device.v2x import CamReceiver, ItsStation, SecureElementV2xKeys
from fleetid.errors import PolicyError, ReferencedDataNotFoundError, VerificationError
from fleetid.formats.attestation import KeyUsage
from fleetid.formats.ieee1609 import datetime_from_time32
from fleetid.formats.ieee1609.validity import validity_bounds
from fleetid.se.client import SecureElementClient, SecureElementSigner
from fleetid.se.state import ATTESTATION_HANDLE, MAX_USER_HANDLE
from fleetid.sim.test_card import manufacture_test_card

PERIOD = timedelta(minutes=5)


def _software_station(pki: Pki, tickets: int) -> ItsStation:
    station = pki.enrolled()
    station.request_tickets(tickets, pki.aa.handle_authorization)
    return station


def _se_station(pki: Pki, its_id: bytes = b"VIN-SE-ROT") -> tuple[ItsStation, SecureElementClient]:
    client = SecureElementClient(manufacture_test_card().card)
    client.select_identity()
    curve = CURVES[pki.hierarchy.family.end_entity]
    canonical = SecureElementSigner(client, client.generate_key(curve, KeyUsage.SIGN).handle)
    pki.ea.register_canonical_key(its_id, canonical.public_key())
    station = ItsStation(
        its_id=its_id,
        canonical_key=canonical,
        keys=SecureElementV2xKeys(client),
        family=pki.hierarchy.family,
        trust=pki.hierarchy.trust_store(),
        clock=pki.clock,
        at_encryption_key=True,  # two slots per AT: signing and ECIES
    )
    station.enrol(pki.ea.handle_enrolment)
    return station, client


def _user_handles(client: SecureElementClient) -> set[int]:
    return {handle for handle, _, _ in client.list_keys() if handle != ATTESTATION_HANDLE}


# ------------------------------------------------------------------ rotation (software keys)


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_an_at_serves_its_period_then_is_retired(family: str) -> None:
    pki = new_pki(family)
    station = _software_station(pki, tickets=3)
    first, second, third = (t for t, _ in station.tickets)
    for _ in range(3):
        assert station.current_ticket()[0] is first
        pki.clock.advance(timedelta(seconds=30))
    assert station.retired_tickets == 0
    pki.clock.advance(PERIOD)
    assert station.current_ticket()[0] is second
    assert [t for t, _ in station.tickets] == [second, third]  # the current one and the unused one
    assert station.retired_tickets == 1


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_new_ats_take_over_from_the_one_kept_in_use(family: str) -> None:
    pki = new_pki(family)
    station = _software_station(pki, tickets=1)
    only = station.current_ticket()[0]
    pki.clock.advance(PERIOD)
    assert station.current_ticket()[0] is only  # nothing fresh: keep sending with it
    [fresh] = station.request_tickets(1, pki.aa.handle_authorization)
    assert station.current_ticket()[0] is only  # same period: no change yet
    pki.clock.advance(PERIOD)
    assert station.current_ticket()[0] is fresh
    assert [t for t, _ in station.tickets] == [fresh]


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_expired_ats_are_retired_not_used(family: str) -> None:
    pki = new_pki(family)
    station = _software_station(pki, tickets=2)
    station.current_ticket()
    pki.clock.advance(timedelta(days=8))  # past the ATs' week
    with pytest.raises(PolicyError, match="no valid"):
        station.current_ticket()
    assert station.tickets == []
    assert station.retired_tickets == 2


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_ats_not_valid_yet_are_kept(family: str) -> None:
    pki = new_pki(family)
    station = _software_station(pki, tickets=2)
    issued_at = pki.clock.now()
    start = validity_bounds(station.tickets[0][0])[0]
    pki.clock.set(datetime_from_time32(start) - timedelta(seconds=1))
    with pytest.raises(PolicyError, match="no valid"):
        station.current_ticket()
    assert len(station.tickets) == 2
    assert station.retired_tickets == 0
    pki.clock.set(issued_at)
    assert station.current_ticket()[0] is station.tickets[0][0]


# ------------------------------------------------------------------ rotation on the secure element


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_rotations_beyond_the_cards_slots(family: str) -> None:
    """300 periods, one AT each (600 keys with the ATs' ECIES keys) on a card of 127 slots."""
    pki = new_pki(family)
    station, client = _se_station(pki)
    receiver = CamReceiver(pki.hierarchy.trust_store(), pki.clock)
    batch, rotations = 20, 300
    assert 2 * rotations > MAX_USER_HANDLE
    pseudonyms, most_slots = set(), 0
    for period in range(rotations):
        if len(station.tickets) <= 1:  # only the one in use left: top up
            station.request_tickets(batch, pki.aa.handle_authorization)
            most_slots = max(most_slots, len(_user_handles(client)))
        cam = receiver.verify(station.sign_cam(b"CAM %d" % period))
        pseudonyms.add(cam.signer_id)
        pki.clock.advance(PERIOD)
    assert len(pseudonyms) == rotations
    assert station.retired_tickets == rotations - 1
    # canonical + EC + (the AT in use + a fresh batch) x (signing + ECIES)
    assert most_slots <= 2 + 2 * (1 + batch)
    assert len(_user_handles(client)) == 2 + 2 * len(station.tickets)


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_a_retired_at_can_no_longer_sign(family: str) -> None:
    pki = new_pki(family)
    station, client = _se_station(pki)
    station.request_tickets(3, pki.aa.handle_authorization)
    station.sign_cam(b"first period")
    retired_ticket, retired_key = station.current_ticket()
    assert isinstance(retired_key, SecureElementSigner)
    retired_key.sign(b"still ours")  # in use: the card signs
    before = _user_handles(client)
    pki.clock.advance(PERIOD)
    cam = station.sign_cam(b"second period")
    CamReceiver(pki.hierarchy.trust_store(), pki.clock).verify(cam)
    gone = before - _user_handles(client)
    assert len(gone) == 2  # the AT's signing key and its ECIES key
    assert retired_key.handle in gone
    with pytest.raises(ReferencedDataNotFoundError) as refused:
        retired_key.sign(b"after retirement")
    assert refused.value.sw == 0x6A88
    with pytest.raises(ReferencedDataNotFoundError) as refused:
        client.ecdh(min(gone - {retired_key.handle}), generate_key("nistP256").public_key())
    assert refused.value.sw == 0x6A88
    assert retired_ticket not in [t for t, _ in station.tickets]
    for _, key in station.tickets:  # the current AT and the unused one keep their keys
        key.sign(b"kept")


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_a_failed_at_request_leaves_no_key_on_the_card(family: str) -> None:
    pki = new_pki(family)
    station, client = _se_station(pki)
    pending = station.authorization_request()
    stale = pki.aa.handle_authorization(pending.encoded)
    station.accept_authorization(pending, stale)
    before = _user_handles(client)
    with pytest.raises(VerificationError, match="pre-shared key"):
        station.request_tickets(1, lambda _request: stale)  # the answer to an older request
    assert _user_handles(client) == before


def test_the_se_key_store_deletes_only_card_keys() -> None:
    client = SecureElementClient(manufacture_test_card().card)
    client.select_identity()
    keys = SecureElementV2xKeys(client)
    with pytest.raises(PolicyError, match="not a key on this secure element"):
        keys.delete(SoftwareSigner(generate_key("nistP256")))
    signer = keys.signing_key("brainpoolP256r1")
    assert isinstance(signer, SecureElementSigner)
    keys.delete(signer)
    with pytest.raises(ReferencedDataNotFoundError) as refused:
        keys.delete(signer)  # already gone
    assert refused.value.sw == 0x6A88


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_a_re_enrolment_deletes_the_old_ec_key(family: str) -> None:
    pki = new_pki(family)
    station, client = _se_station(pki)
    first = station.enrolment_signer()
    assert len(_user_handles(client)) == 2  # canonical + EC
    station.enrol(pki.ea.handle_enrolment)
    assert len(_user_handles(client)) == 2
    assert station.enrolment_signer() is not first
    with pytest.raises(ReferencedDataNotFoundError):
        first.sign(b"the old EC")
    station.request_tickets(1, pki.aa.handle_authorization)  # the new EC signs
