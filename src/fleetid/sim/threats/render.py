"""The renderings of ``ThreatResult`` values: the table ``fleetid threats run`` prints and the
JSON list of ``--json`` (docs/threat-model.md)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from rich.table import Table

from fleetid.sim.threats.result import Outcome, ThreatResult, Verdict

__all__ = ["results_json", "results_table", "verdict_text"]

_STYLE = {Verdict.STOPPED: "green", Verdict.COMPROMISED: "red"}


def verdict_text(outcome: Outcome | None) -> str:
    return "n/a" if outcome is None else outcome.verdict.value


def _cell(outcome: Outcome | None) -> str:
    if outcome is None:
        return "[dim]n/a[/dim]"
    style = _STYLE[outcome.verdict]
    return f"[{style}]{outcome.verdict.value}[/{style}]"


def results_table(results: Sequence[ThreatResult], *, title: str = "fleetid threats") -> Table:
    """Threat, attacker capability, control, result on the SE device and the software device."""
    table = Table(title=title, expand=True, show_lines=True)
    table.add_column("threat", style="bold", ratio=2)
    table.add_column("attacker capability", ratio=3)
    table.add_column("control", ratio=4)
    table.add_column("SE device", ratio=1)
    table.add_column("software device", ratio=1)
    for result in results:
        table.add_row(
            result.threat,
            result.capability,
            result.control,
            _cell(result.se_device),
            _cell(result.software_device),
        )
    return table


def results_json(results: Sequence[ThreatResult]) -> str:
    """A JSON list of the results' objects (``ThreatResult.to_json``)."""
    return json.dumps([r.to_json() for r in results], indent=2)
