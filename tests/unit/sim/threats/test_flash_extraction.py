"""Flash extraction: nothing in an SE device's dump, a working identity in a software device's;
with the flash sealing removed (a test double) the SE device falls too."""

from __future__ import annotations

from fleetid.sim.threats import flash_extraction
from fleetid.sim.threats.result import Verdict
from fleetid.sim.threats.target_fleet import TargetFleet


def test_the_se_device_gives_nothing_and_the_software_device_its_identity(
    target: TargetFleet,
) -> None:
    result = flash_extraction.run(target)
    assert result.se_device is not None and result.software_device is not None
    assert result.se_device.verdict is Verdict.STOPPED
    se = " | ".join(result.se_device.evidence)
    assert "0 of 7 secrets" in se  # 3 private keys, one SCP03 key set of 3 keys, the fuse
    assert "FlashSealError" in se
    assert result.software_device.verdict is Verdict.COMPROMISED
    software = " | ".join(result.software_device.evidence)
    assert "storage passphrase" in software and "enrolment token" in software
    assert "the authority issued certificate" in software
    as_json = result.to_json()
    assert (as_json["se_device"], as_json["software_device"]) == ("stopped", "compromised")


def test_without_the_flash_sealing_the_se_device_is_compromised(
    unsealed_target: TargetFleet,
) -> None:
    result = flash_extraction.run(unsealed_target)
    assert result.se_device is not None
    assert result.se_device.verdict is Verdict.COMPROMISED
    assert "the authority issued certificate" in " ".join(result.se_device.evidence)
