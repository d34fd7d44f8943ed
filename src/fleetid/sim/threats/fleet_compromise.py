"""Fleet compromise from one device (seed, threat section): what device A gives against B.

The attacker fully compromises device A: its SE handles as a signing oracle (the host is
theirs), its firmware, its flash. Against the SE fleet that buys nothing on device B: A's oracle
signs for A's key only, and nothing in A's firmware or flash opens B, so B costs the attacker
exactly what A cost (physical access to B and its bus). Against software devices, A's firmware
holds the storage passphrase every unit uses: B's key file from the line opens at the first
try, no access to B needed. Then A is revoked and the time each connectivity profile takes to
refuse it is measured (``containment``).
"""

from __future__ import annotations

from datetime import timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from fleetid.errors import FleetIdError
from fleetid.se.client import SecureElementSigner
from fleetid.sim.threats.containment import CONTACT_EVERY, PUSH_EVERY, containment_times
from fleetid.sim.threats.result import Outcome, ThreatResult, Verdict
from fleetid.sim.threats.target_fleet import TargetFleet
from fleetid.sim.threats.tools import carve, prove, use_identity

__all__ = ["CONTROL", "run"]

CONTROL = "per-device keys in per-device silicon; revocation on every connectivity profile"
_PEM = serialization.Encoding.PEM


def run(target: TargetFleet) -> ThreatResult:
    se_outcome, se_costs, compromised, device_id = _se(target)
    software_outcome, software_costs = _software(target)
    figures = {
        "SE fleet: attacker's access needed for A / for B": se_costs,
        "software fleet: attacker's access needed for A / for B": software_costs,
    }
    cadence = {
        "always-on": "OCSP, responder polls the registry",
        "intermittent": f"CRL delta hourly, contact every {_hours(CONTACT_EVERY)}",
        "offline": f"filter pushed every {_hours(PUSH_EVERY)}",
    }
    for profile, took in containment_times(target, compromised, device_id).items():
        figures[f"containment (simulated clock), {profile.value} ({cadence[profile.value]})"] = (
            "not contained in 3 simulated days" if took is None else _minutes(took)
        )
    return ThreatResult(
        name="fleet-compromise",
        threat="Fleet compromise from one device",
        capability="device A fully compromised: SE as a signing oracle, firmware, flash",
        control=CONTROL,
        se_device=se_outcome,
        software_device=software_outcome,
        figures=figures,
    )


def _hours(value: timedelta) -> str:
    return f"{value.total_seconds() / 3600:g} h"


def _minutes(value: timedelta) -> str:
    minutes = value.total_seconds() / 60
    return f"{minutes:.0f} min" if minutes < 60 else f"{minutes / 60:g} h"


def _se(target: TargetFleet) -> tuple[Outcome, str, x509.Certificate, str]:
    a, b = target.se_device(), target.se_device()
    a_credential, b_credential = a.agent.credential, b.agent.credential
    assert a_credential is not None and b_credential is not None  # noqa: S101
    oracle = SecureElementSigner(a.client, a_credential.handle)
    evidence = []
    # The oracle is real: A's identity is the attacker's while they hold A.
    issued = use_identity(target.connect(), oracle, a_credential.certificate, a.device_id)
    evidence.append(f"A's oracle accepted as A (certificate {issued.serial_number:x})")
    try:
        use_identity(target.connect(), oracle, b_credential.certificate, b.device_id)
        return (
            Outcome(
                verdict=Verdict.COMPROMISED,
                control=CONTROL,
                evidence=(*evidence, "A's oracle accepted as B"),
            ),
            "physical access to A / none",
            issued,
            a.device_id,
        )
    except FleetIdError as exc:
        evidence.append(f"A's oracle as B: {type(exc).__name__} ({exc})")
    loot = carve(
        a.flash_path.read_bytes() + a.host.dump() + b_credential.certificate.public_bytes(_PEM),
        extra=[target.firmware],
    )
    outcome = prove(
        loot,
        transport=target.connect(),
        certificate=b_credential.certificate,
        device_id=b.device_id,
        control=CONTROL,
        refusal=evidence,
    )
    costs = (
        "physical access to A and its SE bus / physical access to B and its SE bus"
        if outcome.verdict is Verdict.STOPPED
        else "physical access to A / none"
    )
    return outcome, costs, issued, a.device_id


def _software(target: TargetFleet) -> tuple[Outcome, str]:
    a, b = target.software_device(), target.software_device()
    firmware = a.host.files["firmware.bin"]
    first = carve(a.host.dump())  # A's flash, its firmware included
    # What A gave: the passphrase that opened A's key opens B's key file from the line.
    second = carve(
        target.software.bundles[b.device_id] + b.certificate.public_bytes(_PEM),
        extra=first.passphrases or [firmware],
    )
    outcome = prove(
        second,
        transport=target.connect(),
        certificate=b.certificate,
        device_id=b.device_id,
        control="none: one storage passphrase for the fleet",
        refusal=[],
    )
    costs = (
        f"A's flash ({first.candidates_tried} passphrase trials) / "
        f"B's line artefact ({second.candidates_tried} trials), no access to B"
    )
    return outcome, costs
