"""Linked revocation: a vehicle's seed pair revokes its pseudonyms from i_rev on, and nothing else.

The pseudonyms here are built the way the pseudonym CA builds them (lv = plv1 ⊕ plv2 from two
LAs' seed chains), so the check is against certificates a receiver would really see.
"""

from __future__ import annotations

import pytest
from tests.linkage_fixtures import LA1, LA2, Vehicle

from fleetid.crypto.linkage import linkage_seed_at
from fleetid.errors import CertificateRevokedError, EncodingError, VerificationError
from fleetid.revocation.linkage import LinkedRevocation, LinkedRevocationSet

J_MAX = 20


def _revocation(vehicle: Vehicle, i_rev: int, *, i_max: int = 50) -> LinkedRevocation:
    seed1, seed2 = vehicle.seeds(i_rev)
    return LinkedRevocation(
        i_rev=i_rev, la1_id=LA1, la2_id=LA2, seed1=seed1, seed2=seed2, j_max=J_MAX, i_max=i_max
    )


def test_every_later_pseudonym_of_the_vehicle_is_refused() -> None:
    bad = Vehicle()
    crl = LinkedRevocationSet([_revocation(bad, 5)], current_period=6)
    for i in (5, 6, 7, 8):
        for j in range(J_MAX):
            with pytest.raises(CertificateRevokedError):
                crl.check(i, bad.lv(i, j))


def test_its_earlier_pseudonyms_stay_unlinked_and_valid() -> None:
    bad = Vehicle()
    crl = LinkedRevocationSet([_revocation(bad, 5)], current_period=6)
    for i in range(5):
        for j in range(J_MAX):
            crl.check(i, bad.lv(i, j))


def test_other_vehicles_are_not_touched() -> None:
    bad, good = Vehicle(), Vehicle()
    crl = LinkedRevocationSet([_revocation(bad, 3)], current_period=3)
    for j in range(J_MAX):
        crl.check(3, good.lv(3, j))
        crl.check(4, good.lv(4, j))


def test_one_lookup_set_a_period_covers_every_entry() -> None:
    vehicles = [Vehicle() for _ in range(10)]
    crl = LinkedRevocationSet([_revocation(v, 2) for v in vehicles], current_period=2)
    values = crl.linkage_values(2)
    assert len(values) == 10 * J_MAX
    assert crl.linkage_values(2) is values  # expanded once
    assert {v.lv(2, 7) for v in vehicles} <= values


def test_a_tampered_linkage_value_is_not_the_revoked_one() -> None:
    bad = Vehicle()
    crl = LinkedRevocationSet([_revocation(bad, 1)], current_period=1)
    value = bad.lv(1, 0)
    crl.check(1, bytes([value[0] ^ 1]) + value[1:])


def test_a_seed_from_one_la_alone_does_not_revoke() -> None:
    """Seed 1 right and seed 2 of another chain: the linkage values do not match."""
    bad, other = Vehicle(), Vehicle()
    half = LinkedRevocation(
        i_rev=1,
        la1_id=LA1,
        la2_id=LA2,
        seed1=linkage_seed_at(bad.ls1, LA1, 1),
        seed2=linkage_seed_at(other.ls2, LA2, 1),
        j_max=J_MAX,
        i_max=10,
    )
    crl = LinkedRevocationSet([half], current_period=1)
    for j in range(J_MAX):
        crl.check(1, bad.lv(1, j))


def test_an_entry_from_a_future_period_is_refused() -> None:
    with pytest.raises(EncodingError, match="after the current period"):
        LinkedRevocationSet([_revocation(Vehicle(), 9)], current_period=8)


def test_the_forward_walk_is_capped() -> None:
    bad = Vehicle()
    crl = LinkedRevocationSet([_revocation(bad, 1, i_max=60000)], current_period=2, max_forward=2)
    with pytest.raises(CertificateRevokedError):
        crl.check(4, bad.lv(4, 0))
    with pytest.raises(VerificationError, match="not expanded"):
        crl.check(50000, bytes(9))


def test_an_entry_stops_after_its_i_max() -> None:
    bad = Vehicle()
    crl = LinkedRevocationSet([_revocation(bad, 1, i_max=3)], current_period=4)
    with pytest.raises(CertificateRevokedError):
        crl.check(3, bad.lv(3, 0))
    crl.check(4, bad.lv(4, 0))


@pytest.mark.parametrize(
    "change",
    [
        {"seed1": bytes(15)},
        {"la2_id": LA1},
        {"la1_id": b"\x01"},
        {"j_max": 0},
        {"j_max": 256},
        {"i_rev": 7, "i_max": 6},
        {"i_max": 65536},
    ],
)
def test_malformed_entries_are_refused(change: dict[str, object]) -> None:
    fields: dict[str, object] = {
        "i_rev": 1,
        "la1_id": LA1,
        "la2_id": LA2,
        "seed1": bytes(16),
        "seed2": bytes(16),
        "j_max": J_MAX,
        "i_max": 10,
    }
    with pytest.raises(EncodingError):
        LinkedRevocation(**{**fields, **change})  # type: ignore[arg-type]


def test_a_linkage_value_of_the_wrong_size_is_refused() -> None:
    crl = LinkedRevocationSet([], current_period=0)
    with pytest.raises(EncodingError, match="9 bytes"):
        crl.check(0, bytes(8))
