"""Flash extraction (seed, threat section): dump the persisted SE state and the host storage.

The attacker has one device's flash: the SE's sealed flash file and the host's files (its
firmware included). The referee searches the dump for every secret the system holds for that
device; the attacker carves keys out of it and tries to use them from elsewhere. Against the SE
device the dump is AES-GCM ciphertext under the chip's fused key, and the host holds only public
material; against the software device the key file opens with the passphrase in its firmware.
"""

from __future__ import annotations

from fleetid.errors import FlashSealError
from fleetid.se.keystore import Silicon
from fleetid.sim.threats.result import Outcome, ThreatResult
from fleetid.sim.threats.secrets_held import se_secrets, software_secrets
from fleetid.sim.threats.target_fleet import TargetFleet
from fleetid.sim.threats.tools import carve, census, prove

__all__ = ["CONTROL", "run"]

CONTROL = "keys never leave the SE; its flash is sealed under the chip's fuse (AES-GCM)"


def run(target: TargetFleet) -> ThreatResult:
    return ThreatResult(
        name="flash-extraction",
        threat="Flash extraction",
        capability="read one device's flash: SE state file and host storage",
        control=CONTROL,
        se_device=_se(target),
        software_device=_software(target),
    )


def _se(target: TargetFleet) -> Outcome:
    device = target.se_device()
    blob = device.flash_path.read_bytes()
    dump = blob + device.host.dump()
    secrets = se_secrets(target, device)
    found = census(dump, secrets)
    refusal = [
        f"{len(found)} of {len(secrets)} secrets in the {len(dump)}-byte dump"
        + (f" ({', '.join(s.kind for s in found)})" if found else ""),
    ]
    try:
        Silicon.fabricate().unseal(blob)  # the attacker's own chip cannot open it
        refusal.append("the SE flash opened on another chip")
    except FlashSealError as exc:
        refusal.append(f"the SE flash on the attacker's chip: FlashSealError ({exc})")
    return prove(
        carve(dump),
        transport=target.connect(),
        certificate=device.agent.credential.certificate,  # type: ignore[union-attr]
        device_id=device.device_id,
        control=CONTROL,
        refusal=refusal,
    )


def _software(target: TargetFleet) -> Outcome:
    device = target.software_device()
    dump = device.host.dump()
    secrets = software_secrets(target, device)
    found = census(dump, secrets)
    outcome = prove(
        carve(dump),
        transport=target.connect(),
        certificate=device.certificate,
        device_id=device.device_id,
        control="none: the key is in host storage, its passphrase in the firmware",
        refusal=[f"{len(found)} of {len(secrets)} secrets in the dump"],
    )
    return Outcome(
        verdict=outcome.verdict,
        control=outcome.control,
        evidence=(
            f"{len(found)} of {len(secrets)} secrets in the dump "
            f"({', '.join(s.kind for s in found)})",
            *outcome.evidence,
        ),
    )
