"""``fleetid demo``: the main job, end to end on embedded defaults.

Without ``--years`` it is the short tour of every capability (``--devices`` per stage, at most
``DEMO_MAX_DEVICES``). With ``--years`` (or ``--resume``) it is the fleet simulation
(``fleetid.sim.fleet``): N devices through the line, enrolment and Y simulated years, resumable,
with a report.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo", help="run the whole lifecycle on embedded defaults and print a report"
    )
    parser.add_argument(
        "--devices",
        type=int,
        default=None,
        help="how many devices: per stage of the tour (default 5, at most 10000), or the "
        "fleet's size with --years (up to 10 million)",
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="fix randomness for a repeatable run"
    )
    fleet = parser.add_argument_group("the fleet simulation (with --years)")
    fleet.add_argument(
        "--years", type=float, default=None, help="simulated years of life after enrolment"
    )
    fleet.add_argument(
        "--database-url",
        default=None,
        help="the authority's database (default: SQLite in the state directory)",
    )
    fleet.add_argument(
        "--workers", type=int, default=0, help="line processes (default: one per core)"
    )
    fleet.add_argument(
        "--report", type=Path, default=None, help="write report.json and report.html here"
    )
    fleet.add_argument(
        "--state",
        type=Path,
        default=Path("fleetid-fleet"),
        help="where the run keeps its state (default: ./fleetid-fleet)",
    )
    fleet.add_argument(
        "--resume", action="store_true", help="continue the interrupted run in --state"
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from fleetid.errors import ConfigError
    from fleetid.sim.demo import run_demo, run_fleet_demo

    if args.years is None and not args.resume:
        if args.database_url or args.report or args.workers:
            raise ConfigError("--database-url, --workers and --report need --years")
        return run_demo(devices=5 if args.devices is None else args.devices)
    return run_fleet_demo(
        devices=args.devices,
        years=args.years,
        state_dir=args.state,
        database_url=args.database_url,
        workers=args.workers,
        seed=args.seed,
        report_dir=args.report,
        resume=args.resume,
    )
