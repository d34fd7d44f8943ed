"""The lifecycle authorities: the X.509 fleet CA with its enrolment provisioners and revocation
(modules at this level), and the V2X PKI (``fleetid.authority.v2x``).

The public surface: ``FleetCa`` (create and open the CA: ``FleetCa.init``, ``FleetCa.open``),
``LifecycleService`` (EST enrolment, re-enrolment, challenges and release, with
``lifecycle_service`` building it for a CA), the rollovers, and revocation as the operator
records it. Everything else under ``fleetid.authority`` is internal and may change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fleetid._lazy import lazy_exports

if TYPE_CHECKING:
    from fleetid.authority.enrolment import EnrolmentService
    from fleetid.authority.fleet_ca import FleetCa
    from fleetid.authority.lifecycle import LifecycleService, lifecycle_service
    from fleetid.authority.revoke import (
        escalate_serial,
        release_serial,
        revoke_device,
        revoke_serial,
    )
    from fleetid.authority.rollover import roll_issuing_ca, roll_root

__all__ = [
    "EnrolmentService",
    "FleetCa",
    "LifecycleService",
    "escalate_serial",
    "lifecycle_service",
    "release_serial",
    "revoke_device",
    "revoke_serial",
    "roll_issuing_ca",
    "roll_root",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    __all__,
    {
        "fleetid.authority.fleet_ca": ("FleetCa",),
        "fleetid.authority.enrolment": ("EnrolmentService",),
        "fleetid.authority.lifecycle": ("LifecycleService", "lifecycle_service"),
        "fleetid.authority.rollover": ("roll_issuing_ca", "roll_root"),
        "fleetid.authority.revoke": (
            "escalate_serial",
            "release_serial",
            "revoke_device",
            "revoke_serial",
        ),
    },
)
