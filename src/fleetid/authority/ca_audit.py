"""The authority's actions in the verifiable audit log the factory line keeps
(``fleetid.factory.auditlog``, docs/audit-log.md), so that ``fleetid audit verify`` covers the CA.

The repositories record what a transaction does as ``CaEvent``s (``fleetid.store.repositories``):
a CA key generation (``ca.ca-key``: ``ca init`` and every rollover), an issuance
(``ca.issuance``), a revocation, release or escalation (``ca.revocation``, ``ca.release``,
``ca.escalation``) and an enrolment token (``ca.token``: its username and device, never the
secret). Their kinds are ``EventKind`` members (the store's ``AUTHORITY_KINDS``);
a kind the enum does not name is refused, and the transaction with it. ``install`` makes the
store append them, with the signed checkpoint that covers them, in the transaction that made
them, so a crash leaves neither without the other. Appends take the ``audit`` counter's row lock
first, so concurrent writers (server workers) append one at a time. The SQL is
``fleetid.store.ca_audit_queries``'s.

The log key is a P-256 key in the CA's HSM (``AUDIT_KEY_LABEL``), made at ``ca init`` (or on the
first open of an older authority); the origin names the first fleet root's key (stable across
root rollovers), and the verifier key is written to ``<data-dir>/audit-log.vkey`` as the line's
is.
"""

from __future__ import annotations

from typing import Final

from cryptography import x509

from fleetid.clock import Clock
from fleetid.config import Settings
from fleetid.factory.auditlog import AuditEvent, AuditLog
from fleetid.hsm import Hsm
from fleetid.store.ca_audit_queries import first_root_key_id, take_audit_turn
from fleetid.store.engine import Connection
from fleetid.store.repositories import CaEvent, Store

__all__ = ["AUDIT_KEY_LABEL", "install"]

AUDIT_KEY_LABEL: Final = "fleet-audit-1"
_CURVE: Final = "P-256"  # signed-note ECDSA (C2SP tlog-checkpoint)


def ensure_key(hsm: Hsm) -> None:
    """Make the log key in the HSM unless it is there."""
    if AUDIT_KEY_LABEL not in hsm.labels():
        hsm.generate_ec_key(AUDIT_KEY_LABEL, _CURVE)


def install(
    settings: Settings, store: Store, hsm: Hsm, clock: Clock, root: x509.Certificate
) -> AuditLog:
    """Open the authority's audit log and have ``store`` append every transaction's events."""
    ensure_key(hsm)
    first = first_root_key_id(store.engine)  # the first root: the origin outlives rollovers
    key_id = (
        first
        if first is not None
        else x509.SubjectKeyIdentifier.from_public_key(root.public_key()).digest
    )
    log = AuditLog.open(
        settings.data_dir,
        hsm.signer(AUDIT_KEY_LABEL),
        f"fleetid-ca/{key_id[:8].hex()}",
        clock,
        engine=store.engine,
    )

    def append(connection: Connection, events: list[CaEvent]) -> None:
        take_audit_turn(connection)
        log.append_many(
            [AuditEvent(kind=e.kind, serial=e.serial, body=e.body) for e in events],
            connection,
        )

    store.audit = append
    return log
