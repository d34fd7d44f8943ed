"""``fleetid threats list|run [NAME] [--json]``: the field threat model, run as attacks.

``list`` names the scenarios (or says what one does); ``run`` runs one (or all) against a fleet
made for the purpose in a temporary directory and prints the table (threat, attacker
capability, control, result on the SE device, result on the software device) or, with
``--json``, a list of objects with ``name``, ``control``, ``se_device`` and ``software_device``
(``"stopped"``, ``"compromised"`` or null).
The exit status is 1 when an SE device was compromised: a control did not hold.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "threats", help="run the field threat model as attacks (docs/threat-model.md)"
    )
    verbs = parser.add_subparsers(dest="threats_command", metavar="VERB", required=True)
    listed = verbs.add_parser("list", help="name the threat scenarios")
    listed.add_argument("name", nargs="?", default=None, help="only this scenario")
    listed.add_argument("--json", action="store_true", help="a JSON list for tools")
    listed.set_defaults(func=_list)
    run = verbs.add_parser("run", help="run the scenarios (all, or the one named)")
    run.add_argument("name", nargs="?", default=None, help="one scenario (see `threats list`)")
    run.add_argument("--json", action="store_true", help="a JSON list of results for tools")
    run.set_defaults(func=_run)


def _list(args: argparse.Namespace) -> int:
    from fleetid.sim.threats import SCENARIOS, scenario

    chosen = [scenario(args.name)] if args.name else list(SCENARIOS)
    if args.json:
        print(json.dumps([{"name": s.name, "summary": s.summary} for s in chosen], indent=2))
    else:
        width = max(len(s.name) for s in chosen)
        for s in chosen:
            print(f"{s.name:<{width}}  {s.summary}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from fleetid.sim.threats import Verdict, run_threats, scenario
    from fleetid.sim.threats.render import results_json, results_table

    if args.name is not None:
        scenario(args.name)  # an unknown name fails before any fleet is built
    results = run_threats([args.name] if args.name else [])
    if args.json:
        print(results_json(results))
    else:
        console = Console()
        console.print(results_table(results))
        for result in results:
            for label, value in result.figures.items():
                console.print(f"  {result.name}: {label}: {value}")
    failed = [
        r.name
        for r in results
        if r.se_device is not None and r.se_device.verdict is Verdict.COMPROMISED
    ]
    if failed:
        print(f"fleetid: an SE device was compromised in: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
