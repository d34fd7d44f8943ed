"""Boot tampering: a modified image, a rolled-back image, a stolen device with new firmware.

The attacker can write the host's flash. On the SE device the boot routine streams the image to
the SE (VERIFY IMAGE), which holds the firmware key and the monotonic security counter: a
modified image is not authentic (6982), an old genuine image is below the counter (6985), and a
stolen device given the attacker's own firmware never starts it, so that firmware never reaches
the keys; nor can the attacker install their firmware key, which needs the card's SCP03 keys.
On the software device the host checks the image against a key and counter in its own flash,
which the attacker rewrites; their firmware boots and signs with the device's key.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.serialization import load_der_public_key

from fleetid.crypto.keys import new_private_key
from fleetid.crypto.signer import SoftwareSigner
from fleetid.device.boot import boot
from fleetid.errors import FleetIdError, SecureElementError, VerificationError
from fleetid.formats.mcuboot import ParsedImage, build_image, verify_image
from fleetid.se.client import SecureElementSigner
from fleetid.sim.threats.result import Outcome, ThreatResult, Verdict
from fleetid.sim.threats.target_fleet import (
    FIRMWARE_COUNTER,
    HostStorage,
    SeDevice,
    TargetFleet,
    firmware_payload,
    signer_spki,
)
from fleetid.sim.threats.tools import attempt, carve, prove

__all__ = ["CONTROL", "run", "software_boot"]

CONTROL = "the SE verifies every image against its firmware key and monotonic counter"


def run(target: TargetFleet) -> ThreatResult:
    return ThreatResult(
        name="boot-tampering",
        threat="Boot tampering",
        capability="write the host's flash: modified, rolled-back or foreign firmware",
        control=CONTROL,
        se_device=_se(target),
        software_device=_software(target),
    )


def _tampered(image: bytes) -> bytes:
    changed = bytearray(image)
    changed[len(changed) // 2] ^= 0x01
    return bytes(changed)


def _se(target: TargetFleet) -> Outcome:
    device = target.se_device()
    firmware = target.factory.hsm.signer(target.factory.record.firmware_key_label)
    boot(device.client, target.firmware)  # the genuine image: the SE raises its counter to it
    old = build_image(firmware_payload(), firmware, version="1.3.0", security_counter=1)
    own = build_image(
        firmware_payload(b"exfiltrate\0"),
        SoftwareSigner(new_private_key()),
        version="9.9.9",
        security_counter=FIRMWARE_COUNTER + 1,
    )
    evidence: list[str] = []
    booted: list[str] = []
    for what, image in (
        ("modified image", _tampered(target.firmware)),
        ("rolled-back image (genuine, counter 1)", old),
        ("stolen device with the attacker's firmware", own),
    ):
        try:
            boot(device.client, image)
            booted.append(what)
        except FleetIdError as exc:
            sw = getattr(exc, "sw", None)
            evidence.append(f"{what}: {type(exc).__name__}" + (f" SW {sw:04X}" if sw else ""))
    evidence.append(_install_own_key(device))
    device.client.select_identity()
    if booted:
        return _attacker_firmware_runs(target, device, booted)
    return Outcome(verdict=Verdict.STOPPED, control=CONTROL, evidence=tuple(evidence))


def _install_own_key(device: SeDevice) -> str:
    """The attacker tries to put their firmware key into the SE (STORE DATA, no SCP03 keys)."""
    device.client.select_isd()
    try:
        device.client.install_firmware_key(new_private_key().public_key())
    except SecureElementError as exc:
        return f"installing the attacker's firmware key: SW {exc.sw:04X}"
    return "the SE took the attacker's firmware key"


def _attacker_firmware_runs(target: TargetFleet, device: SeDevice, booted: list[str]) -> Outcome:
    """What booted runs the attacker's code: it uses the device's keys by handle."""
    credential = device.agent.credential
    assert credential is not None  # noqa: S101 - the fleet enrolled it
    outcome = attempt(
        SecureElementSigner(device.client, credential.handle),
        transport=target.connect(),
        certificate=credential.certificate,
        device_id=device.device_id,
        control=CONTROL,
        what="the attacker's firmware",
    )
    return Outcome(
        verdict=outcome.verdict,
        control=CONTROL,
        evidence=(f"booted: {', '.join(booted)}", *outcome.evidence),
    )


def software_boot(host: HostStorage, image: bytes) -> ParsedImage:
    """A software device's boot: the image against the key and counter in its own flash."""
    key = load_der_public_key(host.files["boot/firmware-key.der"])
    parsed = verify_image(image, key)  # type: ignore[arg-type]
    counter = int(host.files["boot/security-counter"])
    if (parsed.security_counter or 0) < counter:
        raise VerificationError(f"rollback: image counter {parsed.security_counter} < {counter}")
    host.files["boot/security-counter"] = str(parsed.security_counter).encode()
    return parsed


def _software(target: TargetFleet) -> Outcome:
    device = target.software_device()
    host = device.host
    attacker = SoftwareSigner(new_private_key())
    own = build_image(
        firmware_payload(b"exfiltrate\0"), attacker, version="9.9.9", security_counter=1
    )
    evidence = []
    try:
        software_boot(host, own)
    except VerificationError as exc:
        evidence.append(f"the attacker's image before rewriting the boot key: refused ({exc})")
    # The boot key and counter are host flash: the attacker rewrites them with the image.
    host.files["boot/firmware-key.der"] = signer_spki(attacker)
    host.files["boot/security-counter"] = b"0"
    host.files["firmware.bin"] = own
    software_boot(host, own)
    evidence.append("the attacker's image booted after rewriting the boot key and counter")
    outcome = prove(
        carve(host.dump(), extra=[target.software.firmware]),
        transport=target.connect(),
        certificate=device.certificate,
        device_id=device.device_id,
        control="none: the boot key and counter are in writable host flash",
        refusal=evidence,
    )
    return Outcome(
        verdict=outcome.verdict,
        control=outcome.control,
        evidence=(*evidence, *outcome.evidence),
    )
