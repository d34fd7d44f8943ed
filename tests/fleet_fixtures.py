"""Small fleet simulations for the tests: tens of devices, two simulated weeks, rates raised so
that every kind of event happens in that time.

Run as a module (``python -m tests.fleet_fixtures STATE SEED``) it is the child process the
resume test kills.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from fleetid.sim.fleet import FleetOptions, FleetReport, run_fleet

__all__ = ["quiet_console", "run_small", "small_options"]


def small_options(state: Path, *, seed: int = 5, **changes: Any) -> FleetOptions:
    values: dict[str, Any] = {
        "devices": 36,
        "years": 0.06,  # 22 days: the issuing CA rolls over on day 11, refreshes from day 20
        "state_dir": state,
        "workers": 1,
        "seed": seed,
        "lot_size": 16,
        "revocation_rate": 4.0,
        "silent_rate": 0.5,
        "decommission_rate": 0.5,
        "rekey_share": 0.1,
        "transfer_share": 0.1,
        "defect_rate": 0.05,
        "batch_size": 8,
        **changes,
    }
    return FleetOptions(**values)


def quiet_console() -> Console:
    return Console(file=io.StringIO(), width=80)


def run_small(state: Path, **changes: Any) -> FleetReport:
    return run_fleet(small_options(state, **changes), console=quiet_console())


if __name__ == "__main__":
    run_small(Path(sys.argv[1]), seed=int(sys.argv[2]))
