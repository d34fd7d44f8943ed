"""The packages demo stage: a cohort moves to a new configuration, then to authority B."""

from __future__ import annotations

import io

from rich.console import Console

from fleetid.sim.demo import DemoContext, _stages
from fleetid.sim.demo_preparation import stage_preparation


def test_the_cohort_moves_and_the_expired_order_fails() -> None:
    ctx = DemoContext(devices=3, console=Console(file=io.StringIO(), width=200))
    stage_preparation(ctx)
    report = dict(ctx.report)
    # Two configurations and three anchor packages installed at A, one expired order failed.
    assert report["packages: operator A (state counts)"] == "installed 5, failed 1"
    assert report["packages: authority B (state counts)"] == "installed 3"
    assert report["drill: packages: an expired order"] == "failed"
    output = ctx.console.file.getvalue()  # type: ignore[attr-defined]
    assert "2 of 3 devices took the new configuration" in output
    assert "3 hold a credential from B" in output


def test_the_stage_is_one_of_the_demo() -> None:
    assert sum(stage is stage_preparation for _, stage in _stages()) == 1
