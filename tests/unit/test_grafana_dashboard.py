"""docs/grafana-dashboard.json: valid dashboard JSON whose every expression reads only metrics
that ``fleetid serve --metrics`` exposes (the scrape test checks the same against a real server)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.grafana_dashboard import (
    dashboard_expressions,
    exposed_sample_names,
    load_dashboard,
    metric_names,
)


def test_the_dashboard_is_a_grafana_dashboard() -> None:
    dashboard = load_dashboard()
    assert dashboard["title"] and dashboard["uid"] and isinstance(dashboard["schemaVersion"], int)
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24
        for target in panel.get("targets", []):
            assert target["refId"] and target["expr"]
    assert len(dashboard_expressions(dashboard)) >= 12


def test_every_expression_names_an_exposed_metric() -> None:
    exposed = exposed_sample_names()
    for expression in dashboard_expressions(load_dashboard()):
        names = metric_names(expression)
        assert names, f"no metric in {expression!r}"
        assert names <= exposed, f"{expression!r} reads {sorted(names - exposed)}"


def test_every_metric_is_on_the_dashboard() -> None:
    shown = {name for e in dashboard_expressions(load_dashboard()) for name in metric_names(e)}
    families = {name.removesuffix("_bucket") for name in shown}
    for base in (
        "fleetid_issuance_total",
        "fleetid_issuance_seconds",
        "fleetid_refusals_total",
        "fleetid_revocation_publication_lag_seconds",
        "fleetid_ocsp_responses_total",
        "fleetid_hsm_sign_seconds",
        "fleetid_line_units_total",
        "fleetid_line_quarantines_total",
        "fleetid_db_pool_connections",
        "fleetid_group_commit_batch_size_sum",
        "fleetid_http_requests_total",
        "fleetid_http_request_seconds",
    ):
        assert base in families, base


@pytest.mark.parametrize(
    ("expression", "names"),
    [
        ('sum by (le, x) (rate(a_bucket{cache="hit"}[5m]))', {"a_bucket"}),
        ("histogram_quantile(0.5, rate(b_bucket[$__rate_interval]))", {"b_bucket"}),
        ("c_total / ignoring (x) d_total", {"c_total", "d_total"}),
        ('sum(rate(e{label="by (f)"}[1m])) * 60', {"e"}),
    ],
)
def test_metric_names_reads_promql(expression: str, names: set[str]) -> None:
    assert metric_names(expression) == names


def test_a_dashboard_naming_an_unknown_metric_fails_the_check(tmp_path: Path) -> None:
    dashboard = load_dashboard()
    dashboard["panels"][1]["targets"][0]["expr"] = "rate(fleetid_no_such_metric_total[5m])"
    planted = tmp_path / "dashboard.json"
    planted.write_text(json.dumps(dashboard))
    exposed = exposed_sample_names()
    missing = {
        name
        for expression in dashboard_expressions(load_dashboard(planted))
        for name in metric_names(expression)
    } - exposed
    assert missing == {"fleetid_no_such_metric_total"}
