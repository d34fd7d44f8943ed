"""Bus attacks: replay, reorder, tamper and keyless management are refused with the status word
GP Amendment D gives, and change nothing on the card."""

from __future__ import annotations

from fleetid.sim.threats import bus_attacks
from fleetid.sim.threats.bus_attacks import Injection
from fleetid.sim.threats.result import Verdict
from fleetid.sim.threats.target_fleet import TargetFleet


def test_every_injection_is_refused_and_changes_nothing(target: TargetFleet) -> None:
    injections = bus_attacks.attack_bus(target, target.se_device())
    assert {i.attack: i.observed for i in injections} == {
        "replayed GENERATE KEY": 0x6982,
        "reordered commands": 0x6982,
        "tampered command": 0x6982,
        "PUT KEY without a session": 0x6982,
        "SET STATUS without a session": 0x6982,
        "SET STATUS with a forged C-MAC": 0x6985,
        "EXTERNAL AUTHENTICATE, guessed": 0x6300,
    }
    assert all(i.state_unchanged for i in injections)


def test_the_scenario_has_no_software_variant(target: TargetFleet) -> None:
    result = bus_attacks.run(target)
    assert result.se_device is not None and result.se_device.verdict is Verdict.STOPPED
    assert result.software_device is None
    assert result.to_json()["software_device"] is None


def test_an_injection_counts_as_refused_only_with_the_right_word_and_no_change() -> None:
    assert Injection(attack="x", expected=0x6982, observed=0x6982, state_unchanged=True).refused
    assert not Injection(attack="x", expected=0x6982, observed=0x9000, state_unchanged=True).refused
    assert not Injection(
        attack="x", expected=0x6982, observed=0x6982, state_unchanged=False
    ).refused
