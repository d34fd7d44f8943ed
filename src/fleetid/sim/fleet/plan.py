"""The seeded plan of a simulated fleet: each device's profile and fate, from ``seed`` and its
index alone.

Nothing is drawn from a shared stream, so the plan of device ``i`` is the same whatever batch,
worker or resumed run asks for it, and no list of a million plans is ever held: a stage asks for
the plans of the batch it works on.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Final

from fleetid.policy.connectivity import ConnectivityProfile
from fleetid.sim.fleet.options import FleetOptions

__all__ = ["FATES", "DevicePlan", "plan_for", "sync_interval"]

FATES: Final = ("revoke", "rekey", "transfer", "silent", "decommission")
_PUSH_RECEIVED: Final = 0.8  # the share of filter pushes an offline device is in range for
_MEAN_CONTACT_DAYS: Final = 3.0  # intermittent devices: mean days between contacts
_MAX_CONTACT_DAYS: Final = 14


@dataclass(frozen=True, kw_only=True)
class DevicePlan:
    idx: int
    profile: ConnectivityProfile
    defective: bool
    fate: str | None  # one of FATES, or None: a plain life
    fate_day: int  # the simulated day of the fate (1-based)


def _rng(seed: int, *parts: object) -> random.Random:
    return random.Random("/".join(str(p) for p in (seed, *parts)))  # noqa: S311 - a simulation


def plan_for(options: FleetOptions, idx: int) -> DevicePlan:
    rng = _rng(options.seed, "device", idx)
    draw = rng.random()
    if draw < options.always_on_share:
        profile = ConnectivityProfile.ALWAYS_ON
    elif draw < options.always_on_share + options.intermittent_share:
        profile = ConnectivityProfile.INTERMITTENT
    else:
        profile = ConnectivityProfile.OFFLINE
    defective = rng.random() < options.defect_rate
    years = options.years
    rates = (
        options.revocation_rate * years,
        options.rekey_share,
        options.transfer_share,
        options.silent_rate * years,
        options.decommission_rate * years,
    )
    fate, draw, edge = None, rng.random(), 0.0
    for name, rate in zip(FATES, rates, strict=True):
        edge += rate
        if draw < edge:
            fate = name
            break
    return DevicePlan(
        idx=idx,
        profile=profile,
        defective=defective,
        fate=fate,
        fate_day=rng.randint(1, options.days),
    )


def sync_interval(options: FleetOptions, idx: int, profile: str, day: int) -> int:
    """Days until the next revocation sync of device ``idx`` after one on ``day``: intermittent
    devices come into range after a geometric wait; offline devices get a weekly push, each
    one in range with a fixed chance."""
    rng = _rng(options.seed, "sync", idx, day)
    if profile == ConnectivityProfile.INTERMITTENT:
        wait = 1
        while wait < _MAX_CONTACT_DAYS and rng.random() > 1 / _MEAN_CONTACT_DAYS:
            wait += 1
        return wait
    weeks = 1
    while rng.random() > _PUSH_RECEIVED:
        weeks += 1
    return 7 * weeks
