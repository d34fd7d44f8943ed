"""The FIDO2 card demo stage, in process (the PC/SC path: tests/integration/test_fido_pcsc.py)."""

from __future__ import annotations

from rich.console import Console

from fleetid.se.ctap_device import ApduCtapDevice
from fleetid.sim.demo import DemoContext
from fleetid.sim.demo_fido_card import ctap_device, stage_fido_card
from fleetid.sim.fido_card import manufacture_fido_card


def test_stage_registers_and_authenticates_and_says_how() -> None:
    console = Console(record=True, width=400)
    ctx = DemoContext(devices=1, console=console)
    stage_fido_card(ctx, pcsc=False)
    text = console.export_text()
    assert "FIDO2 applet in process (PC/SC not asked for)" in text
    assert "authenticated with UV" in text and "drill: a replayed assertion refused" in text
    assert ctx.report == [
        ("FIDO2 applet", "register + authenticate in process (PC/SC not asked for)")
    ]


def test_without_pcsc_the_device_is_in_process() -> None:
    made = manufacture_fido_card()
    with ctap_device(made.card, pcsc=False) as (device, how):
        assert isinstance(device, ApduCtapDevice)
        assert how.startswith("in process")
