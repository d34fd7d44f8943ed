"""Boot tampering: the SE refuses a modified (6982), a rolled-back (6985) and a foreign (6982)
image and the attacker's firmware key; the software device boots the attacker's image. With the
SE's image check removed (a test double) the SE device is compromised."""

from __future__ import annotations

import pytest

from fleetid.errors import VerificationError
from fleetid.formats.mcuboot import parse_image
from fleetid.se.applets import boot as boot_applet
from fleetid.sim.threats import boot_tampering
from fleetid.sim.threats.result import Verdict
from fleetid.sim.threats.target_fleet import TargetFleet


def test_each_image_is_refused_with_its_status_word(target: TargetFleet) -> None:
    result = boot_tampering.run(target)
    assert result.se_device is not None and result.software_device is not None
    assert result.se_device.verdict is Verdict.STOPPED
    assert list(result.se_device.evidence) == [
        "modified image: BootRefusedError SW 6982",
        "rolled-back image (genuine, counter 1): BootRefusedError SW 6985",
        "stolen device with the attacker's firmware: BootRefusedError SW 6982",
        "installing the attacker's firmware key: SW 6982",
    ]
    assert result.software_device.verdict is Verdict.COMPROMISED
    assert "booted after rewriting" in " ".join(result.software_device.evidence)


def test_without_the_se_image_check_the_attackers_firmware_signs(
    target: TargetFleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The double: the boot applet measures any image and checks neither key nor counter.
    monkeypatch.setattr(
        boot_applet, "_check_image", lambda ctx, image, *, confirm: parse_image(image).digest
    )
    result = boot_tampering.run(target)
    assert result.se_device is not None
    assert result.se_device.verdict is Verdict.COMPROMISED
    assert "booted: modified image" in result.se_device.evidence[0]


def test_the_software_boot_refuses_a_rollback_until_its_flash_is_rewritten(
    target: TargetFleet,
) -> None:
    device = target.software_device()
    with pytest.raises(VerificationError, match="rollback"):
        device.host.files["boot/security-counter"] = b"9"
        boot_tampering.software_boot(device.host, target.software.firmware)
    device.host.files["boot/security-counter"] = b"0"
    assert boot_tampering.software_boot(device.host, target.software.firmware).security_counter
