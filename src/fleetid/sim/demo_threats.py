"""Demo stage: the field threat model, a short run (docs/threat-model.md).

Four of the attacks of ``fleetid threats run``, each against an SE device and a software-key
device of one fleet made for the purpose: flash extraction, key cloning (with the time the fleet
takes to quarantine a copied chip), boot tampering and bus attacks. Every attack here is a
drill. ``fleetid threats run`` runs them all, with the figures.
"""

from __future__ import annotations

from fleetid.sim.demo import DemoContext, drill
from fleetid.sim.threats import TargetFleet, Verdict, run_threats
from fleetid.sim.threats.render import results_table, verdict_text

__all__ = ["DEMO_SCENARIOS", "stage_threats"]

DEMO_SCENARIOS = ("flash-extraction", "key-cloning", "boot-tampering", "bus-attacks")
_UNITS = 6  # the SE devices these four attack: 1 + 3 + 1 + 1


def stage_threats(ctx: DemoContext) -> None:
    with TargetFleet(units=_UNITS) as target:
        results = run_threats(DEMO_SCENARIOS, target=target)
    ctx.console.print(results_table(results, title=drill("attacks on an SE and a software device")))
    for result in results:
        ctx.record(
            drill(f"threat {result.name} (SE / software)"),
            f"{verdict_text(result.se_device)} / {verdict_text(result.software_device)}",
        )
        for label, value in result.figures.items():
            ctx.console.print(f"  {result.name}: {label}: {value}")
    held = all(r.se_device is None or r.se_device.verdict is Verdict.STOPPED for r in results)
    ctx.record("threats: every SE device held", "yes" if held else "NO")
    ctx.console.print()
