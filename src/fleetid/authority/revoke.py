"""Revocation as the authority records it: one transaction, RFC 5280 §5.3.1 reason names.

``revoke_serial`` marks one certificate revoked: one counter bump (the revocation sequence number
the CRL/OCSP publishers follow) and one indexed row update. ``release_serial`` releases a
certificate from hold and ``escalate_serial`` escalates a revocation's reason; the transitions
allowed are the store's state machine (``fleetid.store.repositories.ESCALATIONS``).
``revoke_device`` revokes every valid certificate of a device and ends its lifecycle (device
status ``revoked``); a device revoked already is refused. ``revoke_device_certificates`` is the
one loop over a device's valid certificates: the operator's ``revoke_device``, a release to
another authority (``cessationOfOperation``) and an enrolment that supersedes a device's earlier
credentials all revoke through it.
"""

from __future__ import annotations

from datetime import datetime

from fleetid.clock import Clock
from fleetid.errors import PolicyError
from fleetid.store.repositories import (
    REVOCATION_REASONS,
    CertificateRecord,
    Repositories,
    Revocation,
    Store,
    revocation_reason,
)
from fleetid.store.schema import CertificateStatus, DeviceStatus, RevocationReason

__all__ = [
    "REVOCATION_REASONS",
    "escalate_serial",
    "release_serial",
    "revoke_device",
    "revoke_device_certificates",
    "revoke_serial",
]


def revoke_serial(
    store: Store,
    serial_hex: str,
    reason: str,
    *,
    clock: Clock,
    invalidity_date: datetime | None = None,
) -> Revocation:
    """Revoke one certificate. Unknown serial: ``NotFoundError``; revoked: ``PolicyError``."""
    with store.transaction() as tx:
        return tx.certificates.revoke(
            serial_hex, revocation_reason(reason), clock.now(), invalidity_date=invalidity_date
        )


def release_serial(store: Store, serial_hex: str, *, clock: Clock) -> Revocation:
    """Release a certificate from hold (``PolicyError`` unless it is on certificateHold)."""
    with store.transaction() as tx:
        return tx.certificates.release(serial_hex, clock.now())


def escalate_serial(
    store: Store,
    serial_hex: str,
    reason: str,
    *,
    clock: Clock,
    invalidity_date: datetime | None = None,
) -> Revocation:
    """Escalate a revoked certificate's reason (``PolicyError`` for a de-escalation)."""
    with store.transaction() as tx:
        return tx.certificates.escalate(
            serial_hex, revocation_reason(reason), clock.now(), invalidity_date=invalidity_date
        )


def revoke_device_certificates(
    tx: Repositories,
    device_id: str,
    reason: RevocationReason,
    now: datetime,
    *,
    successor: CertificateRecord | None = None,
) -> list[Revocation]:
    """Revoke every valid certificate of ``device_id`` in ``tx`` as ``reason``. With a
    ``successor`` (the credential just issued to the device), that one stays valid and every other
    is linked to it as superseded by it."""
    return [
        tx.certificates.revoke(
            c.serial, reason, now, superseded_by=None if successor is None else successor.id
        )
        for c in tx.certificates.for_device(device_id)
        if c.status == CertificateStatus.VALID and (successor is None or c.id != successor.id)
    ]


def revoke_device(store: Store, device_id: str, reason: str, *, clock: Clock) -> list[Revocation]:
    """Revoke every valid certificate of ``device_id`` and mark the device revoked."""
    now = clock.now()
    with store.transaction() as tx:
        device = tx.devices.require(device_id)
        done = revoke_device_certificates(tx, device_id, revocation_reason(reason), now)
        if not done and device.status == DeviceStatus.REVOKED:
            raise PolicyError(f"device {device_id} is already revoked")
        tx.devices.set_status(device_id, DeviceStatus.REVOKED, now)
    return done
