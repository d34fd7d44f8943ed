"""The revocation demo stage: every profile converges at its own moment, with bytes reported."""

from __future__ import annotations

import io

from rich.console import Console

from fleetid.sim.demo import DemoContext
from fleetid.sim.demo_revocation import stage_revocation


def test_stage_revocation_shows_each_profile_converging() -> None:
    ctx = DemoContext(devices=5, console=Console(file=io.StringIO(), width=200))
    stage_revocation(ctx)
    report = dict(ctx.report)
    key = "revocation: converged {} (always-on / intermittent / offline)"
    # Always-on at once; intermittent only at their next contact; offline only after the push.
    assert report[key.format("right after revocation")] == "3/3 / 0/3 / 0/3"
    assert report[key.format("after next contact")] == "3/3 / 3/3 / 0/3"
    for profile in ("always-on", "intermittent", "offline"):
        assert report[f"revocation: {profile} devices converged"] == "3/3"
        assert int(report[f"revocation: {profile} bytes transferred"].replace(",", "")) > 0
    assert report["drill: revocation: old OCSP staple of a revoked device"] == "refused as a replay"
    output = ctx.console.file.getvalue()  # type: ignore[attr-defined]
    assert "bytes transferred" in output
