"""Firmware extraction with key reuse (seed, threat section).

The attacker has the host firmware (from any one unit, or an update file) and the line's
per-device artefacts of the whole lot. Against SE devices there is no fleet master to find: the
firmware and the manifest hold public material only, each device's SCP03 keys are diversified
from the line master inside the HSM (which refuses to export it), and even device A's own static
keys, granted to the attacker outright, do not open device B's secure channel. Against software
devices the firmware's storage passphrase is the same in every unit, so it opens device B's key
file from the line's artefacts, and B's identity is used from elsewhere.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization

from fleetid.errors import FleetIdError
from fleetid.factory.line import DEVICE_KVN
from fleetid.se.client import SecureElementClient
from fleetid.se.scp03 import StaticKeys
from fleetid.sim.threats.result import Outcome, ThreatResult, Verdict
from fleetid.sim.threats.secrets_held import se_secrets, software_secrets
from fleetid.sim.threats.target_fleet import TargetFleet
from fleetid.sim.threats.tools import carve, census, prove

__all__ = ["CONTROL", "run"]

CONTROL = "per-device SCP03 keys diversified in the HSM; per-device keys generated on card"
_PEM = serialization.Encoding.PEM


def run(target: TargetFleet) -> ThreatResult:
    return ThreatResult(
        name="firmware-extraction",
        threat="Firmware extraction with key reuse",
        capability="host firmware image and the line's per-device artefacts",
        control=CONTROL,
        se_device=_se(target),
        software_device=_software(target),
    )


def _se(target: TargetFleet) -> Outcome:
    a, b = target.se_device(), target.se_device()
    artefacts = b"".join(
        e.idevid.public_bytes(_PEM) for e in target.factory.devices if e.idevid is not None
    )
    dump = target.firmware + artefacts
    secrets = [s for d in (a, b) for s in se_secrets(target, d)]
    found = census(dump, secrets)
    evidence = [f"{len(found)} of {len(secrets)} secrets of the lot in firmware and manifest"]
    try:
        target.factory.hsm.export_secret(target.factory.record.line_master_label)
        evidence.append("the HSM exported the line master")
    except FleetIdError as exc:
        evidence.append(f"line master export: {type(exc).__name__}")
    # Grant the attacker device A's own static keys (as if A's silicon were broken open).
    keyset = target.referee_state(a).keysets[DEVICE_KVN]
    a_keys = StaticKeys(keyset.enc, keyset.mac, keyset.dek)
    probe = SecureElementClient(b.card)
    probe.select_identity()
    try:
        probe.open_secure_channel(a_keys, 0x33, key_version=DEVICE_KVN)
        evidence.append("A's keys opened B's secure channel")
        reused = True
    except FleetIdError as exc:
        evidence.append(f"A's SCP03 keys on B: {type(exc).__name__} ({exc})")
        reused = False
    # The refusal is not an artefact of the probe: B's own keys (in the HSM) open it.
    probe.select_identity()
    probe.open_secure_channel(target.factory.session_keys(b.entry), 0x33, key_version=DEVICE_KVN)
    evidence.append("B's own HSM-diversified keys open B's channel (control sanity check)")
    b.client.select_identity()
    if found or reused:
        return Outcome(verdict=Verdict.COMPROMISED, control=CONTROL, evidence=tuple(evidence))
    return prove(
        carve(dump),
        transport=target.connect(),
        certificate=b.agent.credential.certificate,  # type: ignore[union-attr]
        device_id=b.device_id,
        control=CONTROL,
        refusal=evidence,
    )


def _software(target: TargetFleet) -> Outcome:
    a, b = target.software_device(), target.software_device()
    firmware = a.host.files["firmware.bin"]
    artefact = target.software.bundles[b.device_id] + b.certificate.public_bytes(_PEM)
    found = census(firmware + artefact, software_secrets(target, b))
    outcome = prove(
        carve(artefact, extra=[firmware]),
        transport=target.connect(),
        certificate=b.certificate,
        device_id=b.device_id,
        control="none: one storage passphrase in every firmware image",
        refusal=[],
    )
    return Outcome(
        verdict=outcome.verdict,
        control=outcome.control,
        evidence=(
            f"firmware of {a.device_id} and the line's key file of {b.device_id}: "
            f"{', '.join(s.kind for s in found)} found",
            *outcome.evidence,
        ),
    )
