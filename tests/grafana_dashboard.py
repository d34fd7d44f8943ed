"""The Grafana dashboard in docs/ and the metric names its PromQL expressions read."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Final

from prometheus_client.metrics import MetricWrapperBase

from fleetid import metrics

__all__ = [
    "DASHBOARD",
    "dashboard_expressions",
    "exposed_sample_names",
    "load_dashboard",
    "metric_names",
    "sample_names",
]

DASHBOARD: Final = Path(__file__).resolve().parent.parent / "docs" / "grafana-dashboard.json"

# PromQL words that are not metric names (aggregation modifiers, set operators, keywords).
_KEYWORDS: Final = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or"}
    | {"unless", "offset", "inf", "nan"}
)
_SUFFIXES: Final = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gauge": ("",),
}


def dashboard_expressions(dashboard: dict[str, Any]) -> list[str]:
    """Every target's ``expr``, in the panels and in collapsed rows' panels."""
    found: list[str] = []
    for panel in dashboard.get("panels", []):
        for inner in [panel, *panel.get("panels", [])]:
            found.extend(target["expr"] for target in inner.get("targets", []))
    return found


def metric_names(expression: str) -> set[str]:
    """The metric names an expression selects: identifiers that are not functions (followed by
    ``(``), labels (inside ``{}`` or ``by (...)``), durations (``[...]``) or keywords."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expression)  # strings
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        following = text[match.end() :].lstrip()
        if following.startswith("(") or match.group().lower() in _KEYWORDS:
            continue
        names.add(match.group())
    return names


def exposed_sample_names() -> set[str]:
    """The sample names of every metric ``fleetid.metrics`` defines (with their suffixes)."""
    names: set[str] = set()
    for metric in vars(metrics).values():
        if isinstance(metric, MetricWrapperBase):
            for family in metric.describe():
                names.update(sample_names(family.name, family.type))
    return names


def sample_names(family: str, kind: str) -> set[str]:
    """The names a family of ``kind`` (counter, histogram, gauge) exposes its samples under."""
    return {family + suffix for suffix in _SUFFIXES.get(kind, ("",))}


def load_dashboard(path: Path = DASHBOARD) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded
