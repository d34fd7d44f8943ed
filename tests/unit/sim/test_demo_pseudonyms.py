"""The pseudonym demo stage: a week of butterfly pseudonyms, a report, a linked CRL."""

from __future__ import annotations

import io

from rich.console import Console

from fleetid.sim.demo import DemoContext
from fleetid.sim.demo_pseudonyms import PSEUDONYMS_PER_WEEK, stage_pseudonyms
from fleetid.sim.demo_v2x import stage_v2x


def _context(devices: int) -> DemoContext:
    return DemoContext(devices=devices, console=Console(file=io.StringIO(), width=200))


def test_the_stage_revokes_the_reported_vehicle_only() -> None:
    ctx = _context(3)
    stage_pseudonyms(ctx)
    report = dict(ctx.report)
    assert report["v2x pseudonyms issued in butterfly batches"] == str(3 * 2 * PSEUDONYMS_PER_WEEK)
    later = PSEUDONYMS_PER_WEEK - 7
    refused = "drill: v2x later pseudonyms of the reported vehicle refused by neighbours"
    assert report[refused] == f"{2 * later}/{2 * later}"
    assert report["v2x earlier pseudonyms of the reported vehicle still unlinked"] == "yes"
    assert report["drill: v2x reported vehicle's next batch request"] == "refused"
    assert "0 of the others'" in ctx.console.file.getvalue()  # type: ignore[attr-defined]
    deleted = f"their {3 * PSEUDONYMS_PER_WEEK} keys deleted when week 2 began"
    assert deleted in ctx.console.file.getvalue()  # type: ignore[attr-defined]


def test_the_stage_uses_the_v2x_cohort_and_its_secure_elements() -> None:
    ctx = _context(2)
    stage_v2x(ctx)
    stage_pseudonyms(ctx)
    report = dict(ctx.report)
    assert report["v2x pseudonyms issued in butterfly batches"] == str(2 * 2 * PSEUDONYMS_PER_WEEK)
    assert report["drill: v2x reported vehicle's next batch request"] == "refused"
