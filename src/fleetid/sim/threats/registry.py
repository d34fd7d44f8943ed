"""The scenarios, by name, and the runner ``fleetid threats`` and the demo use.

Each scenario is a module with ``run(target) -> ThreatResult``; most attack the one ``TargetFleet``
they share (each takes devices of its own from it), V2X builds its own pseudonym PKI and the
authority row runs nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fleetid.errors import NotFoundError
from fleetid.sim.threats import (
    authority_compromise,
    boot_tampering,
    bus_attacks,
    cloning,
    firmware_extraction,
    flash_extraction,
    fleet_compromise,
    v2x_amplification,
)
from fleetid.sim.threats.result import ThreatResult
from fleetid.sim.threats.target_fleet import TargetFleet

__all__ = ["SCENARIOS", "Scenario", "run_threats", "scenario"]


@dataclass(frozen=True, kw_only=True)
class Scenario:
    name: str
    summary: str
    run: Callable[[TargetFleet], ThreatResult]


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        name="flash-extraction",
        summary="dump the SE's persisted state and the host storage; search it for secrets",
        run=flash_extraction.run,
    ),
    Scenario(
        name="firmware-extraction",
        summary="host firmware and the line's artefacts: no fleet master, no key reuse",
        run=firmware_extraction.run,
    ),
    Scenario(
        name="key-cloning",
        summary="copy a device's whole state into a second emulator; detect a copied chip",
        run=cloning.run,
    ),
    Scenario(
        name="fleet-compromise",
        summary="one device fully compromised: what it gives against a second; containment",
        run=fleet_compromise.run,
    ),
    Scenario(
        name="boot-tampering",
        summary="modified, rolled-back and foreign firmware on a device that keeps its keys",
        run=boot_tampering.run,
    ),
    Scenario(
        name="bus-attacks",
        summary="replay, reorder, tamper SCP03 APDUs; card management without keys",
        run=bus_attacks.run,
    ),
    Scenario(
        name="v2x-amplification",
        summary="one pseudonym from two places; plausibility checks, report, linked CRL",
        run=v2x_amplification.run,
    ),
    Scenario(
        name="authority-compromise",
        summary="out of scope: what protects the authorities, what an operator must do",
        run=authority_compromise.run,
    ),
)


def scenario(name: str) -> Scenario:
    """The scenario called ``name``; ``NotFoundError`` naming the known ones otherwise."""
    for known in SCENARIOS:
        if known.name == name:
            return known
    names = ", ".join(s.name for s in SCENARIOS)
    raise NotFoundError(f"no threat scenario {name!r}; the scenarios are: {names}")


def run_threats(
    names: Sequence[str] = (), *, target: TargetFleet | None = None
) -> list[ThreatResult]:
    """Run the scenarios called ``names`` (all when empty), in the registry's order, against
    ``target`` (a new ``TargetFleet``, removed afterwards, when None)."""
    chosen = [scenario(n) for n in names] if names else list(SCENARIOS)
    own = target is None
    fleet = target if target is not None else TargetFleet()
    try:
        return [s.run(fleet) for s in chosen]
    finally:
        if own:
            fleet.close()
