"""``PeerVerifier``: every verdict of the three profiles with its negative twin.

The revocation material is written by pyca's builders (OCSP, CRL) and the filter builder, signed
by a software issuing CA; path validation is pyca's, through the device's ``TrustStore``.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from tests.peer_fixtures import NOW, Pki

from fleetid.clock import ManualClock
from fleetid.crypto.signer import SoftwareSigner
from fleetid.device.truststore import TrustStore
from fleetid.device.verifier import PeerStatus, PeerVerifier, RevocationSource
from fleetid.errors import (
    CertificateRevokedError,
    CrlRollbackError,
    DeltaGapError,
    FilterRollbackError,
    NotCoveredError,
    ReplayError,
    StaleError,
    VerificationError,
)
from fleetid.policy.connectivity import NotCoveredAction, policy_for
from fleetid.revocation.filter.builder import build_delta


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki()


def _verifier(pki: Pki, profile: str, **policy: object) -> tuple[PeerVerifier, ManualClock]:
    clock = ManualClock(NOW)
    verifier = PeerVerifier(
        trust=TrustStore([pki.root]),
        policy=replace(policy_for(profile), **policy),  # type: ignore[arg-type]
        clock=clock,
        issuers=[pki.issuing],
    )
    return verifier, clock


# --- offline: the filter ------------------------------------------------------------------------


def test_filter_valid_and_revoked(pki: Pki) -> None:
    good, bad = pki.leaf(), pki.leaf()
    verifier, _ = _verifier(pki, "offline")
    verifier.load_filter(pki.filter([bad], [good], watermark=7))
    verdict = verifier.verify(good, [pki.issuing])
    assert (verdict.status, verdict.source, verdict.watermark) == (
        PeerStatus.VALID,
        RevocationSource.FILTER,
        7,
    )
    with pytest.raises(CertificateRevokedError):
        verifier.assess(bad, [pki.issuing])


def test_filter_with_wrong_signer_is_refused(pki: Pki) -> None:
    good = pki.leaf()
    verifier, _ = _verifier(pki, "offline")
    forged = pki.filter(
        [], [good], watermark=9, signer=SoftwareSigner(ec.generate_private_key(ec.SECP256R1()))
    )
    with pytest.raises(VerificationError, match="not a validated issuing CA"):
        verifier.load_filter(forged)
    assert verifier.assess(good, [pki.issuing]).status is PeerStatus.STALE  # nothing loaded


def test_issuer_of_another_fleet_cannot_sign_filters(pki: Pki) -> None:
    other = Pki()
    with pytest.raises(VerificationError):
        PeerVerifier(
            trust=TrustStore([pki.root]),
            policy=policy_for("offline"),
            clock=ManualClock(NOW),
            issuers=[other.issuing],
        )


def test_filter_older_than_the_certificate_is_not_covered(pki: Pki) -> None:
    old = pki.leaf()
    new = pki.leaf(not_before=NOW - timedelta(minutes=10))
    verifier, _ = _verifier(pki, "offline")
    verifier.load_filter(
        pki.filter([], [old], watermark=1, coverage_until=NOW - timedelta(hours=1))
    )
    verdict = verifier.assess(new, [pki.issuing])
    assert verdict.status is PeerStatus.NOT_COVERED
    assert not verdict.acceptable
    with pytest.raises(NotCoveredError):
        verifier.verify(new, [pki.issuing])
    assert verifier.verify(old, [pki.issuing]).status is PeerStatus.VALID


def test_not_covered_grace_is_policy(pki: Pki) -> None:
    near = pki.leaf(not_before=NOW - timedelta(minutes=30))
    far = pki.leaf(not_before=NOW - timedelta(minutes=1))
    verifier, _ = _verifier(
        pki,
        "offline",
        not_covered=NotCoveredAction.ACCEPT_WITHIN_GRACE,
        not_covered_grace=timedelta(minutes=45),
    )
    verifier.load_filter(pki.filter([], [], watermark=1, coverage_until=NOW - timedelta(hours=1)))
    accepted = verifier.verify(near, [pki.issuing])
    assert (accepted.status, accepted.acceptable) == (PeerStatus.NOT_COVERED, True)
    with pytest.raises(NotCoveredError):
        verifier.verify(far, [pki.issuing])


def test_stale_filter_is_never_read_as_valid_but_revoked_still_raises(pki: Pki) -> None:
    good, bad = pki.leaf(), pki.leaf()
    verifier, clock = _verifier(pki, "offline", max_filter_age=timedelta(days=2))
    verifier.load_filter(pki.filter([bad], [good], watermark=3))
    clock.advance(timedelta(days=3))
    with pytest.raises(StaleError, match="older than the policy"):
        verifier.verify(good, [pki.issuing])
    with pytest.raises(CertificateRevokedError):
        verifier.assess(bad, [pki.issuing])


def test_delta_gap_and_rollback(pki: Pki) -> None:
    a, b = pki.leaf(), pki.leaf()
    full_1 = pki.filter([], [a, b], watermark=1)
    full_2 = pki.filter([a], [b], watermark=2)
    delta = build_delta(
        [],
        [],
        base=full_1,
        watermark=1,
        coverage_until=NOW - timedelta(minutes=50),
        signer=pki.signer,
    )
    verifier, _ = _verifier(pki, "offline")
    with pytest.raises(DeltaGapError):
        verifier.load_filter(delta)
    verifier.load_filter(full_2)
    with pytest.raises(FilterRollbackError):
        verifier.load_filter(full_1)
    with pytest.raises(CertificateRevokedError):
        verifier.assess(a, [pki.issuing])


def test_rollover_full_filter_under_the_new_issuer(pki: Pki) -> None:
    g2, g2_key = pki.sibling_issuer()
    old_leaf, new_leaf = pki.leaf(), pki.leaf(issuer=(g2, g2_key))
    verifier, _ = _verifier(pki, "offline")
    verifier.add_issuer(g2)
    verifier.load_filter(pki.filter([], [old_leaf], watermark=5))
    g2_signer = SoftwareSigner(g2_key)
    stale = pki.filter([old_leaf], [], watermark=4, signer=g2_signer)
    with pytest.raises(FilterRollbackError):
        verifier.load_filter(stale)
    full = pki.filter([old_leaf], [new_leaf], watermark=6, signer=g2_signer)
    verifier.load_filter(full)
    with pytest.raises(CertificateRevokedError):
        verifier.assess(old_leaf, [pki.issuing])
    assert verifier.filter_watermark == 6
    assert verifier.verify(new_leaf, [g2]).status is PeerStatus.VALID


def test_path_failure_raises_before_revocation(pki: Pki) -> None:
    stranger = Pki()
    verifier, _ = _verifier(pki, "offline")
    verifier.load_filter(pki.filter([], [], watermark=1))
    with pytest.raises(VerificationError, match="does not chain"):
        verifier.assess(stranger.leaf(), [stranger.issuing])


# --- always-on: OCSP ----------------------------------------------------------------------------


def test_ocsp_good_and_revoked(pki: Pki) -> None:
    leaf = pki.leaf()
    verifier, _ = _verifier(pki, "always-on")
    verdict = verifier.verify(leaf, [pki.issuing], ocsp_response=pki.ocsp(leaf))
    assert (verdict.status, verdict.source) == (PeerStatus.VALID, RevocationSource.OCSP)
    revoked = pki.ocsp(leaf, revoked_at=NOW - timedelta(minutes=5), this_update=NOW)
    with pytest.raises(CertificateRevokedError):
        verifier.assess(leaf, [pki.issuing], ocsp_response=revoked)


def test_ocsp_delegated_responder(pki: Pki) -> None:
    leaf = pki.leaf()
    verifier, _ = _verifier(pki, "always-on")
    response = pki.ocsp(leaf, delegate=True)
    assert verifier.verify(leaf, [pki.issuing], ocsp_response=response).acceptable


def test_ocsp_response_for_another_issuer_is_refused(pki: Pki) -> None:
    leaf = pki.leaf()
    g2, _ = pki.sibling_issuer()
    verifier, _ = _verifier(pki, "always-on")
    with pytest.raises(VerificationError, match="another certificate or issuer"):
        verifier.assess(leaf, [pki.issuing], ocsp_response=pki.ocsp(leaf, certid_issuer=g2))


def test_ocsp_response_signed_by_a_stranger_is_refused(pki: Pki) -> None:
    leaf = pki.leaf()
    g2, g2_key = pki.sibling_issuer()
    verifier, _ = _verifier(pki, "always-on")
    with pytest.raises(VerificationError, match="not signed by the issuer"):
        verifier.assess(leaf, [pki.issuing], ocsp_response=pki.ocsp(leaf, signer=(g2, g2_key)))


def test_replayed_old_good_response_is_refused(pki: Pki) -> None:
    leaf = pki.leaf()
    verifier, _ = _verifier(pki, "always-on")
    old_good = pki.ocsp(leaf, this_update=NOW - timedelta(hours=5))
    revoked = pki.ocsp(
        leaf, revoked_at=NOW - timedelta(hours=2), this_update=NOW - timedelta(hours=1)
    )
    with pytest.raises(CertificateRevokedError):
        verifier.assess(leaf, [pki.issuing], ocsp_response=revoked)
    with pytest.raises(ReplayError):
        verifier.assess(leaf, [pki.issuing], ocsp_response=old_good)


def test_old_good_response_is_stale_by_age_and_by_next_update(pki: Pki) -> None:
    leaf = pki.leaf()
    verifier, _ = _verifier(pki, "always-on", max_ocsp_age=timedelta(days=1))
    aged = pki.ocsp(leaf, this_update=NOW - timedelta(days=2), next_update=NOW + timedelta(days=2))
    assert verifier.assess(leaf, [pki.issuing], ocsp_response=aged).status is PeerStatus.STALE
    expired = pki.ocsp(
        leaf, this_update=NOW - timedelta(hours=2), next_update=NOW - timedelta(hours=1)
    )
    with pytest.raises(StaleError, match="expired"):
        verifier.verify(leaf, [pki.issuing], ocsp_response=expired)


def test_no_ocsp_response_is_stale_unless_fetched(pki: Pki) -> None:
    leaf = pki.leaf()
    verifier, _ = _verifier(pki, "always-on")
    assert verifier.assess(leaf, [pki.issuing]).status is PeerStatus.STALE
    fetched = PeerVerifier(
        trust=TrustStore([pki.root]),
        policy=policy_for("always-on"),
        clock=ManualClock(NOW),
        ocsp_fetcher=lambda cert, issuer: pki.ocsp(cert),
    )
    assert fetched.verify(leaf, [pki.issuing]).status is PeerStatus.VALID


# --- intermittent: CRLs -------------------------------------------------------------------------


def test_crl_full_and_delta(pki: Pki) -> None:
    good, on_full, on_delta = pki.leaf(), pki.leaf(), pki.leaf()
    verifier, _ = _verifier(pki, "intermittent")
    verifier.load_crl(pki.crl([on_full], number=10))
    assert verifier.verify(good, [pki.issuing]).status is PeerStatus.VALID
    with pytest.raises(CertificateRevokedError):
        verifier.assess(on_full, [pki.issuing])
    assert verifier.verify(on_delta, [pki.issuing]).status is PeerStatus.VALID
    verifier.load_crl(pki.crl([on_delta], number=11, delta_of=10))
    with pytest.raises(CertificateRevokedError, match="CRL 11"):
        verifier.assess(on_delta, [pki.issuing])


def test_stale_crl_is_never_read_as_not_revoked(pki: Pki) -> None:
    good = pki.leaf()
    verifier, clock = _verifier(pki, "intermittent")
    verifier.load_crl(pki.crl([], number=1))
    clock.advance(timedelta(days=2))
    with pytest.raises(StaleError, match="nextUpdate"):
        verifier.verify(good, [pki.issuing])


def test_crl_signed_by_another_key_is_refused(pki: Pki) -> None:
    verifier, _ = _verifier(pki, "intermittent")
    forged = pki.crl([], number=2, key=ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(VerificationError, match="not signed"):
        verifier.load_crl(forged)


def test_delta_crl_without_base_and_older_crl(pki: Pki) -> None:
    verifier, _ = _verifier(pki, "intermittent")
    with pytest.raises(DeltaGapError):
        verifier.load_crl(pki.crl([], number=5, delta_of=4))
    verifier.load_crl(pki.crl([], number=8))
    with pytest.raises(CrlRollbackError):
        verifier.load_crl(pki.crl([], number=7))


def test_no_crl_is_stale(pki: Pki) -> None:
    verifier, _ = _verifier(pki, "intermittent")
    verdict = verifier.assess(pki.leaf(), [pki.issuing])
    assert (verdict.status, verdict.acceptable) == (PeerStatus.STALE, False)
