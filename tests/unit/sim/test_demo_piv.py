"""The PIV demo stage signs in process without a vpcd reader, and says so."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from fleetid.sim import demo_piv
from fleetid.sim.demo import DemoContext


def test_without_a_vpcd_reader_the_stage_signs_in_process(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(demo_piv, "_READER_CONF", tmp_path / "no-vpcd")
    console = Console(record=True, width=200)
    ctx = DemoContext(devices=1, console=console)
    demo_piv.stage_piv(ctx)
    (item, value), *_ = ctx.report
    assert item == "PIV applet"
    assert value.startswith("signed in process (") and value.endswith("drill: 2 refusals")
    text = console.export_text()
    assert "signing before VERIFY: refused, SW 6982" in text
    assert "a wrong PIN: refused, SW 63C2" in text
    assert "it verifies" in text


def test_the_tour_runs_the_stage_once() -> None:
    from fleetid.sim.demo import _stages

    assert sum(stage is demo_piv.stage_piv for _, stage in _stages()) == 1
