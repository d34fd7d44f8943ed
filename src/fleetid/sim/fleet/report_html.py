"""``report.html``: the fleet simulation's plots as inline SVG (matplotlib, no CDN, no script),
one self-contained file beside ``report.json``.

Each plot is an ``<svg>`` inside a ``<figure>`` with an ``id``, so that a reader (or the browser
check in the tests) finds every one: issuance per day by credential type, convergence per
connectivity profile, bytes per device per profile, staleness at the devices, line throughput
and quarantines, and the CPU and memory of each stage.
"""

from __future__ import annotations

import html
import io
from collections.abc import Callable
from typing import Any, Final

import matplotlib

matplotlib.use("svg")  # no display, no GUI toolkit
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

__all__ = ["PLOTS", "render_html"]

PLOTS: Final = (
    ("issuance", "Issuance per simulated day, by credential type and action"),
    ("convergence", "Revocation convergence: days from revocation to the last device that rejects"),
    ("bytes", "Bytes per device per connectivity profile, cumulative"),
    ("staleness", "Staleness of revocation data at the devices (mean days since last sync)"),
    ("line", "Line throughput and quarantines, per lot"),
    ("stages", "CPU and peak memory of each stage"),
)

matplotlib.rcParams["svg.hashsalt"] = "fleetid"  # stable ids inside the SVG
matplotlib.rcParams["svg.fonttype"] = "none"  # text as text, no embedded glyph paths


def _legend(ax: Any, **options: Any) -> None:
    """A legend when something was drawn with a label (an empty plot says so instead)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, **options)
    else:
        ax.text(0.5, 0.5, "nothing to show in this run", ha="center", transform=ax.transAxes)


def _svg(draw: Callable[[Figure, Any], None], data: dict[str, Any]) -> str:
    figure = plt.figure(figsize=(8, 3.2))
    try:
        draw(figure, data)
        figure.tight_layout()
        out = io.StringIO()
        figure.savefig(out, format="svg", metadata={"Date": None})
    finally:
        plt.close(figure)
    text = out.getvalue()
    return text[text.index("<svg") :]


def _days(series: dict[str, float]) -> tuple[list[int], list[float]]:
    pairs = sorted((int(d), v) for d, v in series.items())
    return [d for d, _ in pairs], [v for _, v in pairs]


def _issuance(figure: Figure, data: dict[str, Any]) -> None:
    ax = figure.add_subplot()
    daily = data["figures"]["daily"]
    for name in sorted(n for n in daily if n.startswith(("issued:", "action:"))):
        days, values = _days(daily[name])
        ax.plot(days, values, label=name, linewidth=1)
    ax.set_xlabel("simulated day")
    ax.set_ylabel("certificates")
    ax.set_yscale("symlog")
    _legend(ax, ncols=3)


def _convergence(figure: Figure, data: dict[str, Any]) -> None:
    ax = figure.add_subplot()
    for profile, points in sorted(data["figures"]["convergence_lag_days"].items()):
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], "o-", ms=3, label=profile)
    ax.set_xlabel("day of revocation")
    ax.set_ylabel("days to the last device")
    _legend(ax)


def _bytes(figure: Figure, data: dict[str, Any]) -> None:
    ax = figure.add_subplot()
    profiles = data["figures"]["fleet_profiles"]
    for profile, series in sorted(data["measured"]["bytes_per_day"].items()):
        days, values = _days(series)
        total, cumulative = 0.0, []
        for value in values:
            total += value
            cumulative.append(total / max(1, profiles.get(profile, 1)))
        ax.plot(days, cumulative, label=profile)
    ax.set_xlabel("simulated day")
    ax.set_ylabel("bytes per device")
    ax.set_yscale("log")
    _legend(ax)


def _staleness(figure: Figure, data: dict[str, Any]) -> None:
    ax = figure.add_subplot()
    daily = data["figures"]["daily"]
    for name in sorted(n for n in daily if n.startswith("staleness:")):
        days, values = _days(daily[name])
        ax.plot(days, values, label=name.removeprefix("staleness:"))
    ax.set_xlabel("simulated day")
    ax.set_ylabel("days")
    _legend(ax)


def _line(figure: Figure, data: dict[str, Any]) -> None:
    ax = figure.add_subplot()
    daily = data["figures"]["daily"]
    seconds = data["measured"]["lot_seconds"]
    lots, secured = _days(daily.get("lot:secured", {}))
    rates = [
        s / seconds[str(lot)] if seconds.get(str(lot)) else 0.0
        for lot, s in zip(lots, secured, strict=True)
    ]
    ax.bar(lots, rates, color="tab:blue", label="devices/s per lot (one worker)")
    ax.set_xlabel("lot")
    ax.set_ylabel("devices/s")
    twin = ax.twinx()
    qlots, quarantined = _days(daily.get("lot:quarantined", {}))
    twin.plot(qlots, quarantined, "o", color="tab:red", label="quarantined")
    twin.set_ylabel("quarantined")
    _legend(ax, loc="upper left")
    _legend(twin, loc="upper right")


def _stages(figure: Figure, data: dict[str, Any]) -> None:
    cpu, memory = figure.subplots(1, 2)
    names = [s["name"] for s in data["stages"]]
    cpu.barh(names, [s["cpu_seconds"] for s in data["stages"]], color="tab:green")
    cpu.set_xlabel("CPU seconds (all processes)")
    memory.barh(names, [s["peak_rss_bytes"] / 2**20 for s in data["stages"]], color="tab:purple")
    memory.set_xlabel("peak RSS, MiB")
    memory.set_yticks([])


_DRAW: Final = {
    "issuance": _issuance,
    "convergence": _convergence,
    "bytes": _bytes,
    "staleness": _staleness,
    "line": _line,
    "stages": _stages,
}

_STYLE: Final = """
body { font-family: sans-serif; max-width: 60rem; margin: 2rem auto; color: #222; }
table { border-collapse: collapse; } td, th { padding: 0.2rem 0.8rem; text-align: right; }
th:first-child, td:first-child { text-align: left; } figure { margin: 1.5rem 0; }
svg { max-width: 100%; height: auto; }
"""


def render_html(data: dict[str, Any]) -> str:
    """The whole report: a summary table and every plot, with nothing fetched from elsewhere."""
    rows = "".join(
        f"<tr><td>{html.escape(s['name'])}</td><td>{s['units']:,}</td>"
        f"<td>{s['seconds']:.1f}</td><td>{s['units_per_second']:,.0f}</td>"
        f"<td>{s['peak_rss_bytes'] / 2**20:.0f}</td></tr>"
        for s in data["stages"]
    )
    verdict = "converged" if data["converged"] else "NOT converged"
    figures = "".join(
        f'<figure id="plot-{key}"><figcaption>{html.escape(title)}</figcaption>'
        f"{_svg(_DRAW[key], data)}</figure>"
        for key, title in PLOTS
    )
    title = f"fleetid fleet simulation: {data['devices']:,} devices, {data['years']} year(s)"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; img-src data:\">"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        f"<p>Database: {html.escape(data['database'])}; seed {data['seed']}; "
        f"wall {data['wall_seconds']:.1f} s; peak RSS {data['peak_rss_bytes'] / 2**20:.0f} MiB; "
        f'revocation <strong id="verdict">{verdict}</strong>.</p>'
        "<table><tr><th>stage</th><th>units</th><th>seconds</th><th>per second</th>"
        f"<th>peak RSS MiB</th></tr>{rows}</table>{figures}</body></html>\n"
    )
