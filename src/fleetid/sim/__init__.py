"""Simulations that compose the whole system: the demo, simulated chips, wafers and lines.

``manufacture_test_card`` makes one personalised chip with a TEST manufacturer chain (for trying
the secure element from Python); ``Wafer`` fabricates lots of blank chips for the provisioning
line; ``SoftwareLine`` personalises chips without an HSM; ``run_demo`` is ``fleetid demo``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fleetid._lazy import lazy_exports

if TYPE_CHECKING:
    from fleetid.sim.demo import run_demo
    from fleetid.sim.software_line import SoftwareLine
    from fleetid.sim.test_card import ManufacturedCard, manufacture_test_card
    from fleetid.sim.wafer import Wafer

__all__ = [
    "ManufacturedCard",
    "SoftwareLine",
    "Wafer",
    "manufacture_test_card",
    "run_demo",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    __all__,
    {
        "fleetid.sim.test_card": ("ManufacturedCard", "manufacture_test_card"),
        "fleetid.sim.wafer": ("Wafer",),
        "fleetid.sim.software_line": ("SoftwareLine",),
        "fleetid.sim.demo": ("run_demo",),
    },
)
