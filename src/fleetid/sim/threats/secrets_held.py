"""Every secret the system holds for a device, as the referee lists them for a census.

An SE device: each private key in its key slots, its SCP03 key sets, its fuse (read from the
chip, which the attacker does not get). A software device: its private key, the storage
passphrase its firmware carries, its enrolment token.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.sim.threats.target_fleet import SeDevice, SoftwareDevice, TargetFleet
from fleetid.sim.threats.tools import Secret

__all__ = ["se_secrets", "software_secrets"]


def _scalar(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_numbers().private_value.to_bytes((key.curve.key_size + 7) // 8, "big")


def se_secrets(target: TargetFleet, device: SeDevice) -> list[Secret]:
    state = target.referee_state(device)
    found = [
        Secret(
            kind=f"private key (slot {handle:02X})",
            value=slot.private_value.to_bytes(slot.curve.coordinate_size, "big"),
        )
        for handle, slot in state.keys.items()
    ]
    for kvn, keyset in state.keysets.items():
        for role in ("enc", "mac", "dek"):
            found.append(
                Secret(kind=f"SCP03 key {role} (KVN {kvn:02X})", value=getattr(keyset, role))
            )
    found.append(Secret(kind="fuse", value=device.fuse_path.read_bytes()))
    return found


def software_secrets(target: TargetFleet, device: SoftwareDevice) -> list[Secret]:
    token = device.host.files["identity/token"].split(b":", 1)[1]
    return [
        Secret(kind="private key", value=_scalar(device.key)),
        Secret(kind="storage passphrase", value=target.software.passphrase),
        Secret(kind="enrolment token", value=token),
    ]
