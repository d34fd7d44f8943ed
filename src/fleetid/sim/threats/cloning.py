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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from fleetid.authority.clone_detection import CloneDetector, Detection, Sighting
from fleetid.crypto.signer import verify_signature
from fleetid.device.agent import Credential
from fleetid.errors import FleetIdError
from fleetid.se.client import SecureElementClient, SecureElementSigner
from fleetid.se.keystore import Silicon
from fleetid.sim.threats.result import Outcome, ThreatResult, Verdict
from fleetid.sim.threats.target_fleet import SeDevice, TargetFleet
from fleetid.sim.threats.tools import attempt, carve, prove, use_identity

__all__ = [
    "CHECK_IN",
    "CONTROL",
    "DetectionRun",
    "detect_alternating_copy",
    "detect_copied_chip",
    "run",
]

CONTROL = "the flash is sealed under the chip's fuse; the fleet quarantines one identity seen twice"
#: How often a device holds an authenticated session with the fleet (telemetry, a heartbeat).
CHECK_IN = timedelta(minutes=15)
_HORIZON = timedelta(days=2)
_STEP = timedelta(minutes=1)
_HOUR = timedelta(hours=1)
_CAREFUL_HORIZON = timedelta(days=60)
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
    overlapping = detect_copied_chip(target, detector)
    careful = detect_alternating_copy(target, detector)
    return ThreatResult(
        name="key-cloning",
        threat="Key cloning",
        capability="copy a device's whole persisted state (SE blob included) to a second device",
        control=CONTROL,
        se_device=_se(target),
        software_device=_software(target),
        figures={
            "time to detect a copied SE, sessions overlapping": _figure(
                overlapping, f"check-ins every {CHECK_IN.total_seconds() / 60:.0f} min"
            ),
            "time to detect a copied SE, never online together": _figure(
                careful, "original renews on the default operational cadence"
            ),
            "copied SE after quarantine": overlapping.copy_refused or "still accepted",
        },
    )


def _figure(measured: DetectionRun, conditions: str) -> str:
    took, found = measured.time_to_detect, measured.detection
    if took is None or found is None:
        return f"never ({conditions})"
    if took < timedelta(hours=2):
        when = f"{took.total_seconds() / 60:.0f} min"
    else:
        when = f"{took.total_seconds() / 86400:.1f} days"
    return f"{when} after the copy came online ({found.signal.value}; {conditions})"


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


@dataclass(frozen=True, kw_only=True)
class _Chip:
    """One of the two chips presenting the identity: where, when, under which credential."""

    source: str
    signer: SecureElementSigner
    first: timedelta
    every: timedelta
    credential: Callable[[], Credential]


def detect_copied_chip(target: TargetFleet, detector: CloneDetector | None = None) -> DetectionRun:
    """Part two: a perfect copy (fuse and flash) comes online; run the fleet until it is caught.

    The original checks in every ``CHECK_IN`` from its site; the copy, powered at another site
    at the same moment, holds its first session seven minutes later and then keeps the cadence.
    Every check-in is a signature by that chip over a fresh challenge, verified against the
    credential it presents before the detector records it.
    """
    device, copy, handle, copied = _copied_device(target)
    chips = (
        _Chip(
            source="site-A (original)",
            signer=SecureElementSigner(device.client, copied.handle),
            first=timedelta(0),
            every=CHECK_IN,
            credential=lambda: copied,
        ),
        _Chip(
            source="site-B (copy)",
            signer=SecureElementSigner(copy, handle),
            first=_COPY_FIRST_SESSION,
            every=CHECK_IN,
            credential=lambda: copied,
        ),
    )
    detector = detector or CloneDetector(target.ca.store, target.clock, session_window=CHECK_IN)
    return _watch(target, device, chips, detector, step=_STEP, horizon=_HORIZON)


def detect_alternating_copy(
    target: TargetFleet, detector: CloneDetector | None = None
) -> DetectionRun:
    """Part two, a careful attacker: the copy is online only while the original is not (the
    original on even hours, the copy on odd ones), so no two sessions overlap. The original
    renews on the policy's cadence (its agent's ``tick``); the copy still holds the credential
    it was copied with, and its first session after the renewal presents a superseded one.
    """
    device, copy, handle, copied = _copied_device(target)

    def original() -> Credential:
        device.agent.tick(target.transport)
        current = device.agent.credential
        assert current is not None  # noqa: S101 - a live agent holds one
        return current

    chips = (
        _Chip(
            source="site-A (original)",
            signer=SecureElementSigner(device.client, copied.handle),
            first=timedelta(0),
            every=2 * _HOUR,
            credential=original,
        ),
        _Chip(
            source="site-B (copy)",
            signer=SecureElementSigner(copy, handle),
            first=_HOUR,
            every=2 * _HOUR,
            credential=lambda: copied,
        ),
    )
    detector = detector or CloneDetector(target.ca.store, target.clock, session_window=CHECK_IN)
    return _watch(target, device, chips, detector, step=_HOUR, horizon=_CAREFUL_HORIZON)


def _copied_device(
    target: TargetFleet,
) -> tuple[SeDevice, SecureElementClient, int, Credential]:
    device = target.se_device()
    credential = device.agent.credential
    assert credential is not None  # noqa: S101 - the fleet enrolled it
    copy, handle = _copy(target, device, fuse=True)
    return device, copy, handle, credential


def _watch(
    target: TargetFleet,
    device: SeDevice,
    chips: tuple[_Chip, ...],
    detector: CloneDetector,
    *,
    step: timedelta,
    horizon: timedelta,
) -> DetectionRun:
    start = target.clock.now()
    while target.clock.now() - start < horizon:
        elapsed = target.clock.now() - start
        for chip in chips:
            if elapsed < chip.first or (elapsed - chip.first) % chip.every:
                continue
            presented = chip.credential()
            challenge = os.urandom(32)
            key = presented.certificate.public_key()
            verify_signature(key, chip.signer.sign(challenge), challenge)  # type: ignore[arg-type]
            found = detector.observe(
                Sighting(
                    device_id=device.device_id,
                    credential_serial=presented.serial,
                    source=chip.source,
                    at=target.clock.now(),
                )
            )
            if found is not None:
                copy = chips[-1]
                return DetectionRun(
                    online_at=start,
                    detection=found,
                    copy_refused=_refused(target, copy.signer, copy.credential(), device),
                )
        target.clock.advance(step)
    return DetectionRun(online_at=start, detection=None, copy_refused=None)


def _refused(
    target: TargetFleet, signer: SecureElementSigner, credential: Credential, device: SeDevice
) -> str | None:
    try:
        use_identity(target.connect(), signer, credential.certificate, device.device_id)
    except FleetIdError as exc:
        return f"refused: {type(exc).__name__} ({exc})"
    return None
