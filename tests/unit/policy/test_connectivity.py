"""``fleetid.policy.connectivity``: the three profiles, their staleness bounds and the not-covered
rule, and that a verifier uses exactly its profile's artefact."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from tests.peer_fixtures import NOW, Pki

from fleetid.clock import ManualClock
from fleetid.device.truststore import TrustStore
from fleetid.device.verifier import PeerStatus, PeerVerifier, RevocationSource
from fleetid.errors import ConfigError
from fleetid.policy.connectivity import (
    DEFAULT_POLICIES,
    ConnectivityProfile,
    NotCoveredAction,
    RevocationPolicy,
    policy_for,
)


def test_three_profiles_by_enum_and_by_name() -> None:
    assert set(DEFAULT_POLICIES) == set(ConnectivityProfile)
    for profile in ConnectivityProfile:
        assert policy_for(profile).profile is profile
        assert policy_for(profile.value) == policy_for(profile)


def test_unknown_profile_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown connectivity profile"):
        policy_for("sometimes")


def test_offline_default_fails_closed_on_not_covered() -> None:
    offline = policy_for("offline")
    assert offline.not_covered is NotCoveredAction.REJECT
    assert offline.not_covered_grace == timedelta(0)
    assert offline.max_filter_age == timedelta(days=14)  # SCMS overdue-CRL tolerance


@pytest.mark.parametrize(
    "field", ["max_ocsp_age", "crl_tolerance", "max_crl_age", "max_filter_age"]
)
def test_negative_bounds_are_refused(field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        RevocationPolicy(profile=ConnectivityProfile.OFFLINE, **{field: timedelta(seconds=-1)})


def test_grace_needs_the_accepting_action() -> None:
    with pytest.raises(ConfigError, match="ACCEPT_WITHIN_GRACE"):
        RevocationPolicy(profile=ConnectivityProfile.OFFLINE, not_covered_grace=timedelta(hours=1))
    with pytest.raises(ConfigError, match="negative"):
        RevocationPolicy(
            profile=ConnectivityProfile.OFFLINE,
            not_covered=NotCoveredAction.ACCEPT_WITHIN_GRACE,
            not_covered_grace=timedelta(hours=-1),
        )


def test_each_profile_uses_only_its_own_artefact() -> None:
    pki = Pki()
    leaf = pki.leaf()
    verdicts = {}
    for profile in ConnectivityProfile:
        verifier = PeerVerifier(
            trust=TrustStore([pki.root]),
            policy=policy_for(profile),
            clock=ManualClock(NOW),
            issuers=[pki.issuing],
        )
        # Each holds all three kinds of material; only its own may decide.
        verifier.load_filter(pki.filter([], [leaf], watermark=1))
        verifier.load_crl(pki.crl([], number=1))
        verdicts[profile] = verifier.verify(leaf, ocsp_response=pki.ocsp(leaf))
    assert {p: v.source for p, v in verdicts.items()} == {
        ConnectivityProfile.ALWAYS_ON: RevocationSource.OCSP,
        ConnectivityProfile.INTERMITTENT: RevocationSource.CRL,
        ConnectivityProfile.OFFLINE: RevocationSource.FILTER,
    }
    assert all(v.status is PeerStatus.VALID for v in verdicts.values())


def test_staleness_bound_is_per_profile() -> None:
    pki = Pki()
    leaf = pki.leaf()
    clock = ManualClock(NOW)
    tight = PeerVerifier(
        trust=TrustStore([pki.root]),
        policy=replace(policy_for("offline"), max_filter_age=timedelta(hours=2)),
        clock=clock,
        issuers=[pki.issuing],
    )
    tight.load_filter(pki.filter([], [leaf], watermark=1))
    assert tight.assess(leaf).status is PeerStatus.VALID
    clock.advance(timedelta(hours=1, minutes=1))  # the filter covers up to NOW - 1 h
    assert tight.assess(leaf).status is PeerStatus.STALE
