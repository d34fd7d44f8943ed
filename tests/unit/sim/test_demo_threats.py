"""The demo's threats stage: four attacks, each a drill, every SE device holding."""

from __future__ import annotations

import io

from rich.console import Console

from fleetid.sim.demo import DemoContext
from fleetid.sim.demo_threats import DEMO_SCENARIOS, stage_threats


def test_stage_threats_reports_each_attack_on_both_devices() -> None:
    ctx = DemoContext(devices=2, console=Console(file=io.StringIO(), width=200))
    stage_threats(ctx)
    report = dict(ctx.report)
    for name in DEMO_SCENARIOS:
        se, software = report[f"drill: threat {name} (SE / software)"].split(" / ")
        assert se == "stopped"
        assert software == ("n/a" if name == "bus-attacks" else "compromised")
    assert report["threats: every SE device held"] == "yes"
    output = ctx.console.file.getvalue()  # type: ignore[attr-defined]
    assert "time to detect a copied SE" in output
