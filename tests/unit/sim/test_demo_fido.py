"""The FIDO demo stage registers one operator and refuses the three drills."""

from __future__ import annotations

import io

from rich.console import Console

from fleetid.sim.demo import DemoContext
from fleetid.sim.demo_fido import stage_fido


def test_stage_fido_reports_registrations_and_refusals() -> None:
    ctx = DemoContext(devices=1, console=Console(file=io.StringIO(), width=200))
    stage_fido(ctx)
    report = dict(ctx.report)
    assert report["FIDO metadata BLOB"] == "serial 7, 2 models"
    assert report["FIDO operator registrations"] == "1 accepted, 3 refused"
    output = ctx.console.file.getvalue()  # type: ignore[attr-defined]
    assert "forged BLOB: refused (MetadataBlobError)" in output
    assert "older BLOB: refused (MetadataRollbackError)" in output
    for reason in ("challenge-replayed", "authenticator-status", "authenticator-unknown"):
        assert reason in output
