"""The audit log's event kinds: one list for the ceremony, the line and the authority.

It lives in the store, the lowest layer, because the store records the authority's writes as
events of these kinds (``CaEvent``) in the transaction that makes them; the factory's audit log
(``fleetid.factory.auditlog``) writes every kind and re-exports the enum.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["AUTHORITY_KINDS", "EventKind"]


class EventKind(StrEnum):
    """Every event kind fleetid logs: the line's, the ceremony's and the authority's (``ca.``).

    ``AuditLog.append`` accepts any lowercase ``[a-z][a-z0-9._-]*`` kind too, so that a log
    written by another version still verifies; fleetid itself writes these.
    """

    # The key ceremony and the HSM's activation (fleetid.factory.ceremony).
    CEREMONY = "ceremony"
    ACTIVATION = "activation"
    HSM_DEACTIVATED = "hsm-deactivated"
    # The provisioning line, per unit (fleetid.factory.line).
    IDENTIFIED = "identified"
    INJECTION = "injection"
    CERTIFICATION = "certification"
    INSTALLATION = "installation"
    LOCK = "lock"
    QUARANTINE = "quarantine"
    DUPLICATE_SERIAL = "duplicate-serial"
    # The fleet authority's writes (``fleetid.store.repositories.CaEvent``, logged by
    # fleetid.authority.ca_audit in the transaction that makes them).
    CA_KEY = "ca.ca-key"
    CA_ISSUANCE = "ca.issuance"
    CA_REVOCATION = "ca.revocation"
    CA_RELEASE = "ca.release"
    CA_ESCALATION = "ca.escalation"
    CA_TOKEN = "ca.token"  # noqa: S105 - an event kind, not a secret
    #: An applet pushed to a card, its GET STATUS before and after (authority.applet_rollout).
    CA_APPLET_UPGRADE = "ca.applet-upgrade"
    # The operator's surface (fleetid.authority.operator_ca, fleetid.api.admin): an operator
    # credential issued or revoked, a revocation artefact published, a manufacturer root
    # trusted or distrusted. Every write made through the admin API names its operator too.
    CA_OPERATOR_CREDENTIAL = "ca.operator-credential"
    CA_PUBLICATION = "ca.publication"
    CA_MANUFACTURER = "ca.manufacturer"


#: The kinds the fleet authority writes (its ``CaEvent`` kinds).
AUTHORITY_KINDS = frozenset(kind for kind in EventKind if kind.value.startswith("ca."))
