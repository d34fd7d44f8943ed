"""``fleetid.metrics``: one module defines every metric, each named ``fleetid_*``, each with labels
(so multiprocess mode can be chosen before any value exists); publication lag observations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

from fleetid import metrics


def _defined() -> list[MetricWrapperBase]:
    return [m for m in vars(metrics).values() if isinstance(m, MetricWrapperBase)]


def test_every_metric_is_exported_named_for_fleetid_and_labelled() -> None:
    defined = _defined()
    assert len(defined) == 12
    exported = [getattr(metrics, name) for name in metrics.__all__]
    assert {id(m) for m in exported if isinstance(m, MetricWrapperBase)} == {id(m) for m in defined}
    for metric in defined:
        assert metric._name.startswith("fleetid_"), metric._name
        assert metric._labelnames, f"{metric._name} has no labels"
        assert metric._documentation


def test_the_default_registry_exposes_them_all() -> None:
    exposed = {family.name for family in REGISTRY.collect()}
    assert {m._name for m in _defined()} <= exposed


def _lag(channel: str) -> tuple[float, float]:
    count = REGISTRY.get_sample_value(
        "fleetid_revocation_publication_lag_seconds_count", {"channel": channel}
    )
    total = REGISTRY.get_sample_value(
        "fleetid_revocation_publication_lag_seconds_sum", {"channel": channel}
    )
    return count or 0.0, total or 0.0


def test_publication_lag_is_one_observation_per_revocation() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    count, total = _lag("test-channel")
    metrics.observe_publication_lag(
        "test-channel", now, [now - timedelta(seconds=30), now - timedelta(seconds=90)]
    )
    assert _lag("test-channel") == (count + 2, total + 120)


def test_a_revocation_dated_after_the_publication_counts_as_no_lag() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    count, total = _lag("test-clock-skew")
    metrics.observe_publication_lag("test-clock-skew", now, [now + timedelta(minutes=5)])
    assert _lag("test-clock-skew") == (count + 1, total)


def test_nothing_published_observes_nothing() -> None:
    count, total = _lag("test-empty")
    metrics.observe_publication_lag("test-empty", datetime(2030, 1, 1, tzinfo=UTC), [])
    assert _lag("test-empty") == (count, total)
