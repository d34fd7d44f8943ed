"""Firmware extraction and fleet compromise: no fleet master in SE firmware and artefacts, A's
keys do not open B; one software firmware opens every software device; containment per
connectivity profile on the simulated clock."""

from __future__ import annotations

import re

from fleetid.policy.connectivity import ConnectivityProfile
from fleetid.sim.threats import firmware_extraction, fleet_compromise
from fleetid.sim.threats.containment import CONTACT_EVERY, PUSH_EVERY, containment_times
from fleetid.sim.threats.result import Verdict
from fleetid.sim.threats.target_fleet import TargetFleet


def test_there_is_no_fleet_master_in_se_firmware(target: TargetFleet) -> None:
    result = firmware_extraction.run(target)
    assert result.se_device is not None and result.software_device is not None
    assert result.se_device.verdict is Verdict.STOPPED
    evidence = " | ".join(result.se_device.evidence)
    assert "0 of 14 secrets" in evidence
    assert "line master export: HsmError" in evidence
    assert "A's SCP03 keys on B: VerificationError" in evidence
    assert "B's own HSM-diversified keys open B's channel" in evidence
    assert result.software_device.verdict is Verdict.COMPROMISED


def test_one_device_gives_nothing_against_a_second_se_device(target: TargetFleet) -> None:
    result = fleet_compromise.run(target)
    assert result.se_device is not None and result.software_device is not None
    assert result.se_device.verdict is Verdict.STOPPED
    evidence = " | ".join(result.se_device.evidence)
    assert "A's oracle accepted as A" in evidence
    assert "A's oracle as B: AuthenticationError" in evidence
    assert result.software_device.verdict is Verdict.COMPROMISED
    costs = result.figures["SE fleet: attacker's access needed for A / for B"]
    assert costs.count("physical access") == 2
    software = result.figures["software fleet: attacker's access needed for A / for B"]
    assert "no access to B" in software
    # The marginal cost: B's key file opens with what A gave, at the first passphrase tried.
    first, second = (int(n) for n in re.findall(r"\((\d+) (?:passphrase )?trials", software))
    assert second == 2 < first  # "no passphrase", then A's
    for profile in ("always-on", "intermittent", "offline"):
        assert any(profile in label for label in result.figures)


def test_containment_comes_with_each_profiles_channel(target: TargetFleet) -> None:
    device = target.se_device()
    assert device.agent.credential is not None
    times = containment_times(target, device.agent.credential.certificate, device.device_id)
    always_on = times[ConnectivityProfile.ALWAYS_ON]
    intermittent = times[ConnectivityProfile.INTERMITTENT]
    offline = times[ConnectivityProfile.OFFLINE]
    assert always_on is not None and intermittent is not None and offline is not None
    assert always_on < intermittent <= CONTACT_EVERY < offline <= PUSH_EVERY
