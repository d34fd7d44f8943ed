"""Key cloning: a copied SE blob does not open on another chip, a copied software storage works;
a perfectly copied chip is quarantined. Without the sealing (a test double) the copy works, and
without the clone detector (a test double) the copied chip is never caught."""

from __future__ import annotations

from datetime import timedelta

from fleetid.authority.clone_detection import CloneDetector, CloneSignal, Detection, Sighting
from fleetid.policy import CredentialType
from fleetid.policy.renewal_window import SPREAD
from fleetid.sim.threats import cloning
from fleetid.sim.threats.result import Verdict
from fleetid.sim.threats.target_fleet import TargetFleet


class BlindDetector(CloneDetector):
    """The control removed: every contact is recorded as plausible."""

    def observe(self, sighting: Sighting) -> Detection | None:
        return None


def test_the_copy_does_not_open_and_the_copied_chip_is_quarantined(target: TargetFleet) -> None:
    result = cloning.run(target)
    assert result.se_device is not None and result.software_device is not None
    assert result.se_device.verdict is Verdict.STOPPED
    assert "FlashSealError" in result.se_device.evidence[0]
    assert result.software_device.verdict is Verdict.COMPROMISED
    overlapping = result.figures["time to detect a copied SE, sessions overlapping"]
    assert overlapping.startswith("7 min after the copy came online (concurrent-sessions")
    careful = result.figures["time to detect a copied SE, never online together"]
    assert "days after the copy came online (credential-regression" in careful
    assert "certificateHold" in result.figures["copied SE after quarantine"]


def test_the_measurement_names_the_signal_and_the_time(target: TargetFleet) -> None:
    measured = cloning.detect_copied_chip(target)
    assert measured.detection is not None
    assert measured.detection.signal is CloneSignal.CONCURRENT_SESSIONS
    assert measured.time_to_detect == timedelta(minutes=7)
    assert measured.copy_refused is not None and "revoked" in measured.copy_refused


def test_a_copy_never_online_with_the_original_is_caught_at_its_renewal(
    target: TargetFleet,
) -> None:
    cadence = target.ca.settings.policy.profile(CredentialType.OPERATIONAL).cadence
    renewal = cadence.lifetime - cadence.renewal_window
    measured = cloning.detect_alternating_copy(target)
    assert measured.detection is not None and measured.time_to_detect is not None
    assert measured.detection.signal is CloneSignal.CREDENTIAL_REGRESSION
    # The original renews in its renewal window from the authority (RFC 9773), which starts in
    # the first half of the cadence's (fleetid.policy.renewal_window); the copy is caught then.
    latest = renewal + cadence.renewal_window * SPREAD + timedelta(hours=2)
    assert renewal <= measured.time_to_detect <= latest
    assert measured.copy_refused is not None and "certificateHold" in measured.copy_refused


def test_without_the_clone_detector_the_copied_chip_is_never_caught(target: TargetFleet) -> None:
    blind = BlindDetector(target.ca.store, target.clock)
    measured = cloning.detect_copied_chip(target, blind)
    assert measured.detection is None and measured.time_to_detect is None


def test_without_the_flash_sealing_the_copy_signs(unsealed_target: TargetFleet) -> None:
    result = cloning.run(unsealed_target)
    assert result.se_device is not None
    assert result.se_device.verdict is Verdict.COMPROMISED
    assert "the copied chip of" in result.se_device.evidence[0]
    assert "the authority issued certificate" in result.se_device.evidence[0]
