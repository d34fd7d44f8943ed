"""``fleetid demo``: the main job, end to end on embedded defaults."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo", help="run the whole lifecycle on embedded defaults and print a report"
    )
    parser.add_argument(
        "--devices", type=int, default=5, help="how many devices to manufacture (1 to 10000)"
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="fix randomness for a repeatable run"
    )
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from fleetid.sim.demo import run_demo

    return run_demo(devices=args.devices)
