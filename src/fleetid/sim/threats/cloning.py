"""Key cloning (seed, threat section): copy a device's whole persisted state into a second one.

Part one, the attack the seed describes: the SE device's flash file (the SE blob) and its host
storage are copied into a second emulator, a chip of the attacker's own. The copy does not open:
the flash is sealed under the first chip's fuse, which stays in that silicon. The software
device's copied storage works at once.

Part two assumes what silicon does not allow: an attacker who copied the SE itself (fuse and
flash). Two devices then present one identity; the fleet's ``CloneDetector`` sees their
authenticated sessions (each a signature over a fresh challenge, checked against the
credential) and quarantines the identity. The scenario measures, on the simulated clock, how
long after the copy comes online that happens, and shows the copy refused afterwards.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta

from fleetid.authority.clone_detection import CloneDetector, Detection, Sighting
from fleetid.crypto.signer import verify_signature
from fleetid.errors import FleetIdError
from fleetid.se.client import SecureElementClient, SecureElementSigner
from fleetid.se.keystore import Silicon
from fleetid.sim.threats.result import Outcome, ThreatResult, Verdict
from fleetid.sim.threats.target_fleet import SeDevice, TargetFleet
from fleetid.sim.threats.tools import attempt, carve, prove, use_identity

__all__ = ["CHECK_IN", "CONTROL", "DetectionRun", "run"]

CONTROL = "the flash is sealed under the chip's fuse; the fleet quarantines one identity seen twice"
#: How often a device holds an authenticated session with the fleet (telemetry, a heartbeat).
CHECK_IN = timedelta(minutes=15)
_HORIZON = timedelta(days=2)
_STEP = timedelta(minutes=1)
#: The copy's first session after it is powered at another site.
_COPY_FIRST_SESSION = timedelta(minutes=7)


@dataclass(frozen=True, kw_only=True)
class DetectionRun:
    """Part two's measurement: when the copy came online and when the fleet quarantined it."""

    online_at: datetime
    detection: Detection | None
    copy_refused: str | None

    @property
    def time_to_detect(self) -> timedelta | None:
        return None if self.detection is None else self.detection.at - self.online_at


def run(target: TargetFleet, *, detector: CloneDetector | None = None) -> ThreatResult:
    measured = detect_copied_chip(target, detector)
    if measured.time_to_detect is None:
        figure = "never (no quarantine within two simulated days)"
    else:
        figure = (
            f"{measured.time_to_detect.total_seconds() / 60:.0f} min after the copy came online "
            f"({measured.detection.signal.value}; check-ins every "  # type: ignore[union-attr]
            f"{CHECK_IN.total_seconds() / 60:.0f} min)"
        )
    return ThreatResult(
        name="key-cloning",
        threat="Key cloning",
        capability="copy a device's whole persisted state (SE blob included) to a second device",
        control=CONTROL,
        se_device=_se(target),
        software_device=_software(target),
        figures={
            "time to detect a copied SE": figure,
            "copied SE after quarantine": measured.copy_refused or "still accepted",
        },
    )


def _copy(target: TargetFleet, device: SeDevice, *, fuse: bool) -> tuple[SecureElementClient, int]:
    """The second device: the first one's flash (and, in part two, fuse) in a new emulator."""
    bench = target.root / "attacker" / device.entry.unit
    bench.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(device.flash_path, bench / "copy.flash")
    if fuse:
        shutil.copyfile(device.fuse_path, bench / "copy.fuse")
    else:
        Silicon.fabricate().save(bench / "copy.fuse")
    chip = target.open_chip(bench / "copy.fuse", bench / "copy.flash")
    client = SecureElementClient(chip)
    client.select_identity()
    return client, int(device.host.files["agent/handle"])


def _se(target: TargetFleet) -> Outcome:
    device = target.se_device()
    credential = device.agent.credential
    assert credential is not None  # noqa: S101 - the fleet enrolled it
    try:
        client, handle = _copy(target, device, fuse=False)
    except FleetIdError as exc:
        return Outcome(
            verdict=Verdict.STOPPED,
            control=CONTROL,
            evidence=(f"the copied SE blob on a second chip: {type(exc).__name__} ({exc})",),
        )
    return attempt(
        SecureElementSigner(client, handle),
        transport=target.connect(),
        certificate=credential.certificate,
        device_id=device.device_id,
        control=CONTROL,
        what="the copied chip",
    )


def _software(target: TargetFleet) -> Outcome:
    device = target.software_device()
    copy = dict(device.host.files)  # the whole host storage, into a second device
    dump = b"".join(copy.values())
    return prove(
        carve(dump),
        transport=target.connect(),
        certificate=device.certificate,
        device_id=device.device_id,
        control="none: the copied storage is the identity",
        refusal=[],
    )


def detect_copied_chip(target: TargetFleet, detector: CloneDetector | None = None) -> DetectionRun:
    """Part two: a perfect copy (fuse and flash) comes online; run the fleet until it is caught.

    The original checks in every ``CHECK_IN`` from its site; the copy, powered at another site
    at the same moment, holds its first session seven minutes later and then keeps the cadence.
    Every check-in is a signature by that chip over a fresh challenge, verified against the
    credential before the detector records it.
    """
    device = target.se_device()
    credential = device.agent.credential
    assert credential is not None  # noqa: S101 - the fleet enrolled it
    detector = detector or CloneDetector(target.ca.store, target.clock, session_window=CHECK_IN)
    copy, handle = _copy(target, device, fuse=True)
    chips = {
        "site-A (original)": (SecureElementSigner(device.client, credential.handle), timedelta(0)),
        "site-B (copy)": (SecureElementSigner(copy, handle), _COPY_FIRST_SESSION),
    }
    start = online_at = target.clock.now()
    key = credential.certificate.public_key()
    while target.clock.now() - start < _HORIZON:
        elapsed = target.clock.now() - start
        for source, (signer, offset) in chips.items():
            if elapsed >= offset and (elapsed - offset) % CHECK_IN == timedelta(0):
                challenge = os.urandom(32)
                verify_signature(key, signer.sign(challenge), challenge)  # type: ignore[arg-type]
                found = detector.observe(
                    Sighting(
                        device_id=device.device_id,
                        credential_serial=credential.serial,
                        source=source,
                        at=target.clock.now(),
                    )
                )
                if found is not None:
                    return DetectionRun(
                        online_at=online_at,
                        detection=found,
                        copy_refused=_copy_refused(target, copy, handle, device),
                    )
        target.clock.advance(_STEP)
    return DetectionRun(online_at=online_at, detection=None, copy_refused=None)


def _copy_refused(
    target: TargetFleet, copy: SecureElementClient, handle: int, device: SeDevice
) -> str | None:
    credential = device.agent.credential
    assert credential is not None  # noqa: S101
    try:
        use_identity(
            target.connect(),
            SecureElementSigner(copy, handle),
            credential.certificate,
            device.device_id,
        )
    except FleetIdError as exc:
        return f"refused: {type(exc).__name__} ({exc})"
    return None
