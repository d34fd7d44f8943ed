"""The factory: key ceremony, provisioning line and its tamper-evident audit log.

The public surface: the ceremony (``init_ceremony``, ``activate``, ``deactivate``,
``CeremonyConfig``), the line (``open_line``, ``ProvisioningLine``, ``run_pool`` for many
processes), the personalisation sequence every line shares (``personalise``), and the audit log
(``AuditLog``, ``AuditLogReader``, ``EventKind``). Everything else under ``fleetid.factory`` is
internal and may change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fleetid._lazy import lazy_exports

if TYPE_CHECKING:
    from fleetid.factory.auditlog import AuditLog, AuditLogReader, EventKind
    from fleetid.factory.ceremony import CeremonyConfig, activate, deactivate, init_ceremony
    from fleetid.factory.line import ProvisioningLine, open_line
    from fleetid.factory.line_pool import run_pool
    from fleetid.factory.personalisation import personalise

__all__ = [
    "AuditLog",
    "AuditLogReader",
    "CeremonyConfig",
    "EventKind",
    "ProvisioningLine",
    "activate",
    "deactivate",
    "init_ceremony",
    "open_line",
    "personalise",
    "run_pool",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    __all__,
    {
        "fleetid.factory.ceremony": ("CeremonyConfig", "activate", "deactivate", "init_ceremony"),
        "fleetid.factory.line": ("ProvisioningLine", "open_line"),
        "fleetid.factory.line_pool": ("run_pool",),
        "fleetid.factory.personalisation": ("personalise",),
        "fleetid.factory.auditlog": ("AuditLog", "AuditLogReader", "EventKind"),
    },
)
