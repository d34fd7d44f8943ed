"""The V2X demo stage runs both cohorts and reports what it did."""

from __future__ import annotations

import io

from rich.console import Console

from fleetid.sim.demo import DemoContext
from fleetid.sim.demo_v2x import TICKETS_PER_VEHICLE, stage_v2x


def test_stage_v2x_reports_each_family() -> None:
    ctx = DemoContext(devices=2, console=Console(file=io.StringIO(), width=200))
    stage_v2x(ctx)
    report = dict(ctx.report)
    for family in ("brainpool", "nist"):
        key = f"v2x {family}: canonical keys imported from the line manifest (SE-attested)"
        assert report[key] == "2"
        assert report[f"v2x {family}: ECs issued by the EA"] == "2"
        assert report[f"v2x {family}: ATs issued (no device id)"] == str(2 * TICKETS_PER_VEHICLE)
        # each CAM is verified by the one neighbour, in every pseudonym period
        assert report[f"v2x {family}: CAMs verified by neighbours"] == str(2 * TICKETS_PER_VEHICLE)
        assert report[f"drill: v2x {family}: CAMs refused after AA revocation"] == "2/2"
    output = ctx.console.file.getvalue()  # type: ignore[attr-defined]
    for family in ("brainpool", "nist"):
        assert f"{family}: 2 vehicles (keys in secure element" in output
