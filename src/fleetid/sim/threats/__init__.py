"""The field threat model as executable attacks (docs/threat-model.md).

Each scenario is an attacker with exactly the access the seed's threat section gives it (one
device's flash, its host firmware, its bus to the SE; never the inside of the SE), run against
an SE-rooted device and a software-key device of one fleet (``TargetFleet``). ``run_threats``
returns one ``ThreatResult`` per scenario; ``fleetid threats list|run [NAME] [--json]`` and the
demo's threats stage render them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fleetid._lazy import lazy_exports

if TYPE_CHECKING:
    from fleetid.sim.threats.registry import SCENARIOS, Scenario, run_threats, scenario
    from fleetid.sim.threats.result import Outcome, ThreatResult, Verdict
    from fleetid.sim.threats.target_fleet import TargetFleet

__all__ = [
    "SCENARIOS",
    "Outcome",
    "Scenario",
    "TargetFleet",
    "ThreatResult",
    "Verdict",
    "run_threats",
    "scenario",
]

__getattr__, __dir__ = lazy_exports(
    __name__,
    __all__,
    {
        "fleetid.sim.threats.registry": ("SCENARIOS", "Scenario", "run_threats", "scenario"),
        "fleetid.sim.threats.result": ("Outcome", "ThreatResult", "Verdict"),
        "fleetid.sim.threats.target_fleet": ("TargetFleet",),
    },
)
