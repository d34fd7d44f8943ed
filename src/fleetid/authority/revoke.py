"""Revocation as the authority records it: one transaction, RFC 5280 §5.3.1 reason names.

``revoke_serial`` marks one certificate revoked: one counter bump (the revocation sequence number
the CRL/OCSP publishers follow) and one indexed row update. ``revoke_device`` revokes every valid
certificate of a device and ends its lifecycle (device status ``revoked``). Publishing is the
revocation issue's.
"""

from __future__ import annotations

from fleetid.clock import Clock
from fleetid.store.repositories import Revocation, Store
from fleetid.store.schema import REASONS, CertificateStatus, DeviceStatus

__all__ = ["REASONS", "revoke_device", "revoke_serial"]


def revoke_serial(store: Store, serial_hex: str, reason: str, *, clock: Clock) -> Revocation:
    """Revoke one certificate. Unknown serial: ``NotFoundError``; revoked: ``PolicyError``."""
    with store.transaction() as tx:
        return tx.certificates.revoke(serial_hex, reason, clock.now())


def revoke_device(store: Store, device_id: str, reason: str, *, clock: Clock) -> list[Revocation]:
    """Revoke every valid certificate of ``device_id`` and mark the device revoked."""
    now = clock.now()
    with store.transaction() as tx:
        tx.devices.require(device_id)
        done = [
            tx.certificates.revoke(c.serial, reason, now)
            for c in tx.certificates.for_device(device_id)
            if c.status == CertificateStatus.VALID
        ]
        tx.devices.set_status(device_id, DeviceStatus.REVOKED, now)
    return done
