"""The applets demo stage: identity 1 -> 2 on a few cards, keys kept, two drills refused."""

from __future__ import annotations

import io

from rich.console import Console

from fleetid.sim.demo import DemoContext, _stages
from fleetid.sim.demo_applets import stage_applets


def test_the_cohort_is_upgraded_and_the_drills_are_refused() -> None:
    ctx = DemoContext(devices=5, console=Console(file=io.StringIO(), width=200))
    stage_applets(ctx)
    report = dict(ctx.report)
    assert report["applets: identity 1 -> 2 pushed"] == "3/3 cards"
    assert report["drill: applets: another signer"] == "refused 6982"
    assert report["drill: applets: back to version 1"] == "refused 6985"
    output = ctx.console.file.getvalue()  # type: ignore[attr-defined]
    assert output.count("identity applet 1 -> 2 (upgraded)") == 3
    assert "3 keys still sign after the upgrade; 9 audit entries" in output


def test_the_stage_is_one_of_the_demo() -> None:
    assert sum(stage is stage_applets for _, stage in _stages()) == 1
