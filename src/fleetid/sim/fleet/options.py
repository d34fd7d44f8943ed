"""What a fleet simulation run is asked to do (``fleetid demo --devices N --years Y …``).

The plan's rates are the run's, fixed by its options and ``seed`` (``fleetid.sim.fleet.plan``):
the same options give the same fleet and the same events.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from fleetid.errors import ConfigError

__all__ = ["BROKEN_CHANNELS", "FLEET_MAX_DEVICES", "FleetOptions"]

FLEET_MAX_DEVICES: Final = 10_000_000
# The published channels a run can break on purpose. OCSP is not one: the responder answers from
# the registry (it polls it on its own), so there is no publication to stop.
BROKEN_CHANNELS: Final = ("crl", "filter")


@dataclass(frozen=True, kw_only=True)
class FleetOptions:
    """A run's size, database, parallelism, seed and where its state and report go."""

    devices: int
    years: float
    state_dir: Path
    database_url: str | None = None
    workers: int = 0  # 0: one per core
    seed: int = 0
    report_dir: Path | None = None
    resume: bool = False
    # The plan's shares and rates (per device, per simulated year where a rate).
    always_on_share: float = 0.4
    intermittent_share: float = 0.4
    revocation_rate: float = 0.01
    rekey_share: float = 0.10
    transfer_share: float = 0.02
    silent_rate: float = 0.01
    decommission_rate: float = 0.01
    defect_rate: float = 0.002
    lot_size: int = 512  # chips per lot, the line's unit of work: small fleets use every core
    batch_size: int = 256
    # A revocation channel that stops publishing after the first day, to show the check fails.
    broken_channel: str | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.devices <= FLEET_MAX_DEVICES:
            raise ConfigError(
                f"the fleet simulation takes 1 to {FLEET_MAX_DEVICES} devices, not {self.devices}"
            )
        if not 0 < self.years <= 10:
            raise ConfigError(
                f"the fleet simulation runs 0 to 10 simulated years, not {self.years}"
            )
        if self.workers < 0:
            raise ConfigError(f"--workers is at least 1 (0: one per core), not {self.workers}")
        if self.broken_channel is not None and self.broken_channel not in BROKEN_CHANNELS:
            raise ConfigError(
                f"no revocation channel {self.broken_channel!r} to break (one of {BROKEN_CHANNELS})"
            )
        shares = (self.always_on_share, self.intermittent_share)
        if min(shares) < 0 or sum(shares) > 1:
            raise ConfigError("the connectivity shares are between 0 and 1 and sum to at most 1")
        yearly = (self.revocation_rate, self.silent_rate, self.decommission_rate)
        shares = (self.rekey_share, self.transfer_share)
        if min(*yearly, *shares) < 0 or sum(yearly) * self.years + sum(shares) > 1:
            raise ConfigError(
                "the lifecycle rates (yearly ones times the years, and the cohort shares) are "
                "at least 0 and sum to at most 1"
            )

    @property
    def days(self) -> int:
        """Simulated days of life after enrolment."""
        return max(1, round(365 * self.years))

    @property
    def worker_count(self) -> int:
        return self.workers or os.cpu_count() or 1

    @property
    def database(self) -> str:
        """``sqlite`` or ``postgresql``: the backend the report names."""
        url = self.database_url or "sqlite"
        return "postgresql" if url.startswith("postgresql") else "sqlite"
