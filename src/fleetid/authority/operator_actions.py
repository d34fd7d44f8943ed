"""The writes an operator makes through the admin API, each in the audit log with the operator's
identity (``Operator.identity``: name, role, credential serial).

Each action runs in one transaction and every audit event it records (``CaEvent``) gets the
member ``operator`` before the transaction appends them (``attributed``), so a revocation made
over the API is one ``ca.revocation`` entry naming both the certificate and who revoked it. A
publication and a manufacturer root trusted or distrusted, which write no row of their own, are
recorded as ``ca.publication`` and ``ca.manufacturer`` entries. The role check is the caller's
(``Operator.require``), made before any of these runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from fleetid.authority.fleet_ca import FleetCa
from fleetid.authority.operator_ca import Operator
from fleetid.authority.provisioners.attestation import distrust_manufacturer, trust_manufacturer
from fleetid.authority.provisioners.token import IssuedToken, create_token
from fleetid.authority.revoke import revoke_device_certificates
from fleetid.crypto.pkix import issued_by
from fleetid.errors import EncodingError, PolicyError, VerificationError
from fleetid.revocation.crl import CrlPublisher, Publication
from fleetid.store import operator_credentials
from fleetid.store.event_kinds import EventKind
from fleetid.store.repositories import CaEvent, Repositories, Revocation, Store, revocation_reason
from fleetid.store.schema import DeviceStatus
from fleetid.store.token_revocation import revoke_token

__all__ = [
    "attributed",
    "checked_manufacturer_root",
    "create_tokens",
    "distrust_root",
    "numbered_device_ids",
    "publish_crls",
    "revoke_certificate",
    "revoke_device",
    "revoke_operator_credential",
    "revoke_tokens",
    "trust_root",
]


@contextmanager
def attributed(store: Store, operator: Operator) -> Iterator[Repositories]:
    """A transaction whose audit events all name ``operator``."""
    with store.transaction() as tx:
        yield tx
        who = operator.identity()
        tx.events[:] = [replace(e, body={**e.body, "operator": who}) for e in tx.events]


def revoke_certificate(
    ca: FleetCa,
    operator: Operator,
    serial: str,
    reason: str,
    invalidity_date: datetime | None = None,
) -> Revocation:
    with attributed(ca.store, operator) as tx:
        return tx.certificates.revoke(
            serial, revocation_reason(reason), ca.clock.now(), invalidity_date=invalidity_date
        )


def revoke_device(ca: FleetCa, operator: Operator, device_id: str, reason: str) -> list[Revocation]:
    """Every valid certificate of the device, and the device's lifecycle ends (``revoked``)."""
    now = ca.clock.now()
    with attributed(ca.store, operator) as tx:
        device = tx.devices.require(device_id)
        done = revoke_device_certificates(tx, device_id, revocation_reason(reason), now)
        if not done and device.status == DeviceStatus.REVOKED:
            raise PolicyError(f"device {device_id} is already revoked")
        tx.devices.set_status(device_id, DeviceStatus.REVOKED, now)
    return done


def numbered_device_ids(prefix: str, count: int, start: int) -> list[str]:
    """``count`` device ids ``prefix`` + ``start``, ``start + 1``, ... (at least 4 digits)."""
    width = max(4, len(str(start + count - 1)))
    return [f"{prefix}{n:0{width}d}" for n in range(start, start + count)]


def create_tokens(
    ca: FleetCa, operator: Operator, device_ids: list[str], ttl: timedelta
) -> list[IssuedToken]:
    """One token a device, all in one transaction (all or none)."""
    with attributed(ca.store, operator) as tx:
        return [
            create_token(tx, device_id=device_id, clock=ca.clock, ttl=ttl)
            for device_id in device_ids
        ]


def revoke_tokens(ca: FleetCa, operator: Operator, username: str) -> Any:
    with attributed(ca.store, operator) as tx:
        return revoke_token(tx, username, ca.clock.now())


def publish_crls(ca: FleetCa, operator: Operator, publisher: CrlPublisher) -> list[Publication]:
    """A new full and delta CRL of every shard now, as ``fleetid crl publish`` makes them."""
    done = publisher.publish(force=True)
    with attributed(ca.store, operator) as tx:
        tx.events.append(
            CaEvent(
                kind=EventKind.CA_PUBLICATION,
                serial=None,
                body={
                    "channel": "crl",
                    "crls": [
                        {
                            "issuer_id": p.issuer_id,
                            "shard": p.shard,
                            "kind": str(p.kind),
                            "number": p.crl_number,
                        }
                        for p in done
                    ],
                },
            )
        )
    return done


def checked_manufacturer_root(root: x509.Certificate, now: datetime) -> x509.Certificate:
    """``root`` if it can be a trust anchor: a CA (RFC 5280 §4.2.1.9) that signs itself
    (§6.1.1 (d)) and has not expired."""
    try:
        constraints = root.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise VerificationError("the manufacturer root is not a CA certificate (basicConstraints)")
    if not issued_by(root, root):
        raise VerificationError("the manufacturer root is not self-signed")
    if root.not_valid_after_utc <= now:
        raise VerificationError(
            f"the manufacturer root expired on {root.not_valid_after_utc.isoformat()}"
        )
    return root


def _manufacturer_event(tx: Repositories, action: str, root: x509.Certificate) -> None:
    tx.events.append(
        CaEvent(
            kind=EventKind.CA_MANUFACTURER,
            serial=None,
            body={
                "action": action,
                "subject": root.subject.rfc4514_string(),
                "sha256": root.fingerprint(hashes.SHA256()).hex(),
            },
        )
    )


def trust_root(ca: FleetCa, operator: Operator, pem: bytes) -> x509.Certificate:
    """Add a manufacturer root (one PEM certificate) to the attestation provisioner's trust."""
    try:
        (root,) = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise EncodingError("the body is not one PEM certificate") from exc
    checked_manufacturer_root(root, ca.clock.now())
    with attributed(ca.store, operator) as tx:
        _manufacturer_event(tx, "trusted", root)
        trust_manufacturer(ca.settings.data_dir, root)
    return root


def distrust_root(ca: FleetCa, operator: Operator, fingerprint: str) -> list[x509.Certificate]:
    with attributed(ca.store, operator) as tx:
        removed = distrust_manufacturer(ca.settings.data_dir, fingerprint)
        for root in removed:
            _manufacturer_event(tx, "distrusted", root)
    return removed


def revoke_operator_credential(
    ca: FleetCa, operator: Operator, serial: str
) -> operator_credentials.OperatorCredential:
    with attributed(ca.store, operator) as tx:
        return operator_credentials.revoke(tx, serial, ca.clock.now(), by=operator.identity())
