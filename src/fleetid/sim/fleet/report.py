"""The fleet simulation's report: ``report.json`` with every figure for tools, ``report.html``
beside it for people (``fleetid.sim.fleet.report_html``), and an 80-column terminal summary.

``figures`` holds what the seed decides (the fleet, its events, issuance, revocations, syncs,
convergence); timings, resident memory and byte counts (an ECDSA signature's DER length varies
by a byte or two) are measurements and sit apart, so that two runs of one seed compare equal on
``figures``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from fleetid.sim.fleet.options import FleetOptions
from fleetid.store.fleet_sim_repository import FleetSimStore

__all__ = ["FleetReport", "build_report", "print_summary", "write_report"]


@dataclass(frozen=True)
class FleetReport:
    data: dict[str, Any]

    @property
    def converged(self) -> bool:
        return bool(self.data["converged"])


def _convergence_lags(
    syncs: list[tuple[str, int, int, int]], revoked_days: dict[int, int]
) -> dict[str, list[tuple[int, int]]]:
    """Per profile: (revocation day, days until the last device that synced after it had it)."""
    lags: dict[str, list[tuple[int, int]]] = defaultdict(list)
    profiles = sorted({s[0] for s in syncs})
    for profile in profiles:
        rows = [(start, end) for p, start, end, _ in syncs if p == profile]
        for day in sorted(revoked_days):
            covering = [end - day for start, end in rows if start < day <= end]
            if covering:
                lags[profile].append((day, max(covering)))
    return dict(lags)


def build_report(
    options: FleetOptions, store: FleetSimStore, *, wall_seconds: float
) -> FleetReport:
    stages = store.stages()
    daily = store.daily()
    series: dict[str, dict[int, float]] = defaultdict(dict)
    for day, name, value in daily:
        series[name][day] = value
    revoked_days: dict[int, int] = defaultdict(int)
    for day, value in series.get("revoked:keyCompromise", {}).items():
        revoked_days[day] += int(value)
    for day, value in series.get("decommissioned", {}).items():
        revoked_days[day] += int(value)
    meta = store.meta()
    states = {f"{state}": n for state, n in store.count_by("state")}
    profiles = {f"{profile}": n for profile, n in store.count_by("profile")}
    deterministic = {
        name: {str(d): v for d, v in sorted(values.items())}
        for name, values in sorted(series.items())
        if not name.startswith(("bytes:", "lot:seconds"))
    }
    lags = _convergence_lags(store.syncs(), revoked_days)
    data: dict[str, Any] = {
        "devices": options.devices,
        "years": options.years,
        "database": options.database,
        "seed": options.seed,
        "wall_seconds": round(sum(s.seconds for s in stages), 3),
        "peak_rss_bytes": max((s.peak_rss_bytes for s in stages), default=0),
        "stages": [
            {
                "name": s.name,
                "seconds": round(s.seconds, 3),
                "units": s.units,
                "units_per_second": round(s.units / s.seconds, 1) if s.seconds > 0 else 0.0,
                "cpu_seconds": round(s.cpu_seconds, 3),
                "peak_rss_bytes": s.peak_rss_bytes,
            }
            for s in stages
        ],
        "converged": json.loads(meta.get("converged", "false")),
        "figures": {
            "fleet_states": states,
            "fleet_profiles": profiles,
            "daily": deterministic,
            "syncs": [list(row) for row in store.syncs()],
            "convergence_lag_days": {p: [list(x) for x in v] for p, v in lags.items()},
            "convergence": json.loads(meta.get("convergence", "{}")),
        },
        "measured": {
            "bytes_per_day": {
                name.removeprefix("bytes:"): {str(d): v for d, v in sorted(values.items())}
                for name, values in sorted(series.items())
                if name.startswith("bytes:")
            },
            "lot_seconds": {str(d): v for d, v in sorted(series.get("lot:seconds", {}).items())},
            "this_invocation_seconds": round(wall_seconds, 3),
        },
    }
    return FleetReport(data)


def _si(value: float) -> str:
    for unit in ("", "k", "M", "G"):
        if abs(value) < 1000:
            return f"{value:.0f}{unit}" if unit == "" else f"{value:.1f}{unit}"
        value /= 1000
    return f"{value:.1f}T"


def print_summary(console: Console, report: FleetReport) -> None:
    """Stages (units, time, rate) and the fleet's final state, in 80 columns."""
    data = report.data
    table = Table(
        title=f"fleet of {data['devices']:,} devices, {data['years']} year(s), {data['database']}",
        width=min(console.width, 80),
    )
    table.add_column("stage")
    table.add_column("units", justify="right")
    table.add_column("seconds", justify="right")
    table.add_column("per second", justify="right")
    table.add_column("peak RSS", justify="right")
    for stage in data["stages"]:
        table.add_row(
            stage["name"],
            f"{stage['units']:,}",
            f"{stage['seconds']:.1f}",
            _si(stage["units_per_second"]),
            f"{stage['peak_rss_bytes'] / 2**20:.0f} MiB",
        )
    console.print(table)
    states = ", ".join(f"{k} {v:,}" for k, v in data["figures"]["fleet_states"].items())
    console.print(f"fleet: {states}")
    verdict = "[green]converged[/green]" if data["converged"] else "[red]NOT converged[/red]"
    conv = data["figures"]["convergence"]
    failing = sum(conv.get("failing_devices", {}).values())
    console.print(
        f"revocation: {verdict}; {conv.get('revoked_peers', 0):,} revoked peers, "
        f"{conv.get('checks', 0):,} checks; {failing:,} devices accept one"
    )


def write_report(report: FleetReport, directory: Path) -> None:
    """``report.json`` and, beside it, the self-contained ``report.html``."""
    from fleetid.sim.fleet.report_html import render_html

    directory.mkdir(parents=True, exist_ok=True)
    (directory / "report.json").write_text(json.dumps(report.data, indent=1, sort_keys=True) + "\n")
    (directory / "report.html").write_text(render_html(report.data))
