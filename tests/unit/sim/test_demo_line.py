"""The demo's ceremony-and-line stage runs and hands usable manufactured devices on."""

from __future__ import annotations

from rich.console import Console

from fleetid.se.state import CardLifeCycle
from fleetid.sim.demo import DemoContext
from fleetid.sim.demo_line import DemoLine, stage_ceremony_and_line


def test_stage_runs_the_ceremony_and_the_line_and_hands_on_devices() -> None:
    ctx = DemoContext(devices=2, console=Console(record=True, width=120))
    stage_ceremony_and_line(ctx)
    text = ctx.console.export_text()
    assert "drill: activation with 2 of 5 refused" in text
    assert "HSM activated" in text
    report = dict(ctx.report)
    assert report["line: secured"] == "2"
    assert report["drill: line: defective chip quarantined / cloned serial refused"] == "1 / 1"
    line = ctx.state["line"]
    assert isinstance(line, DemoLine) and len(line.devices) == 2
    device = line.devices[0]
    client = line.client(device)
    client.select_isd()
    client.open_secure_channel(line.session_keys(device), key_version=0x30)  # type: ignore[arg-type]
    assert client.life_cycle() is CardLifeCycle.SECURED
