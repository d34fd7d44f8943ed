"""A vehicle's card does not fill up with pseudonym keys: each period's keys are deleted once the
period is superseded (``PseudonymWallet``), so weeks of batches fit 127 user slots."""

from __future__ import annotations

import pytest
from tests.butterfly_fixtures import BatchPki, new_batch_pki

from fleetid.crypto.v2xkeys import CURVES
from fleetid.device.pseudonyms import (
    Pseudonym,
    PseudonymRequester,
    PseudonymWallet,
    SecureElementCaterpillar,
)
from fleetid.errors import PolicyError, ReferencedDataNotFoundError, SecureElementError
from fleetid.se.client import SecureElementClient, SecureElementSigner
from fleetid.se.state import ATTESTATION_HANDLE, MAX_USER_HANDLE
from fleetid.sim.test_card import manufacture_test_card


def _card() -> SecureElementClient:
    client = SecureElementClient(manufacture_test_card().card)
    client.select_identity()
    return client


def _user_slots(client: SecureElementClient) -> int:
    return sum(1 for handle, _, _ in client.list_keys() if handle != ATTESTATION_HANDLE)


def _vehicle(batch: BatchPki, client: SecureElementClient) -> PseudonymRequester:
    station = batch.pki.enrolled(b"VIN-SLOTS-%d" % id(client))
    assert station.enrolment_credential is not None
    curve = CURVES[batch.pki.hierarchy.family.end_entity]
    return PseudonymRequester(
        ec_signer=station.enrolment_signer(),
        ec_certificate=station.enrolment_credential.encoded,
        ra_certificate=batch.authorities.ra.certificate.encoded,
        ca_certificate=batch.authorities.ca.certificate,
        curve=curve,
        caterpillar=SecureElementCaterpillar(client, curve),
    )


@pytest.fixture(scope="module")
def batch() -> BatchPki:
    return new_batch_pki("nist", per_period=20)


def test_twelve_weeks_on_a_card_of_127_slots(batch: BatchPki) -> None:
    client = _card()
    vehicle = _vehicle(batch, client)
    wallet = PseudonymWallet(vehicle.caterpillar)
    weeks = 12
    assert weeks * 20 > MAX_USER_HANDLE
    wallet.add(batch.week(vehicle, 0))
    most = 0
    for week in range(weeks):
        wallet.add(batch.week(vehicle, week + 1))  # next week's batch, downloaded ahead
        current = wallet.for_period(week)
        assert [p.i for p in current] == [week] * 20
        current[week % 20].key.sign(b"CAM in week %d" % week)
        most = max(most, _user_slots(client))
    # the caterpillar + this week's and next week's pseudonym keys, never more
    assert most == 1 + 2 * 20
    assert wallet.retired == weeks * 20 - 20
    assert wallet.periods() == [weeks - 1, weeks]


def test_without_retiring_the_card_fills_up(batch: BatchPki) -> None:
    """The control: keeping every week's keys runs out of slots before week seven."""
    client = _card()
    vehicle = _vehicle(batch, client)
    with pytest.raises(SecureElementError):
        for week in range(7):
            batch.week(vehicle, week)
    assert _user_slots(client) > MAX_USER_HANDLE - 20


def test_a_superseded_pseudonym_can_no_longer_sign(batch: BatchPki) -> None:
    client = _card()
    vehicle = _vehicle(batch, client)
    wallet = PseudonymWallet(vehicle.caterpillar)
    wallet.add(batch.week(vehicle, 0))
    wallet.add(batch.week(vehicle, 1))
    old: Pseudonym = wallet.for_period(0)[0]
    old.key.sign(b"current")
    before = _user_slots(client)
    assert [p.i for p in wallet.for_period(1)] == [1] * 20
    assert _user_slots(client) == before - 20
    with pytest.raises(ReferencedDataNotFoundError):
        old.key.sign(b"after its week")
    with pytest.raises(PolicyError):
        wallet.for_period(0)  # no going back
    late = batch.week(vehicle, 0)  # a download for a superseded week
    with pytest.raises(PolicyError):
        wallet.add(late)
    assert _user_slots(client) == before - 20  # its keys were erased at once
    assert wallet.for_period(3) == []  # nothing held for week 3: week 1's keys go too
    assert _user_slots(client) == 1


def test_release_never_erases_the_caterpillar() -> None:
    client = _card()
    caterpillar = SecureElementCaterpillar(client, CURVES["nistP256"])
    caterpillar.release(SecureElementSigner(client, caterpillar.handle))
    key = caterpillar.cocoon_key(0, 0)  # still derives
    caterpillar.release(key)
    assert _user_slots(client) == 1
