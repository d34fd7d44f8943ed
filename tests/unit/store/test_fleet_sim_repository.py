"""The fleet simulation's rows (``fleetid.store.fleet_sim_repository``) on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError

from fleetid.store.fleet_sim_repository import FleetSimStore, SimStage, new_device_row


@pytest.fixture
def store(db_url: str) -> Iterator[FleetSimStore]:
    made = FleetSimStore(db_url)
    yield made
    made.dispose()


def _row(idx: int, **changes: Any) -> dict[str, Any]:
    return {**new_device_row(idx, f"F00000-{idx:06d}", "intermittent", "made"), **changes}


def test_a_lot_s_rows_replace_what_a_killed_run_left_of_them(store: FleetSimStore) -> None:
    store.replace_devices(0, 3, [_row(i) for i in range(4)], {"lots_done": "[0]"})
    store.replace_devices(0, 3, [_row(i, state="quarantined") for i in range(4)], {})
    assert store.count_by("state") == [("quarantined", 4)]
    assert store.meta() == {"lots_done": "[0]"}


def test_a_batch_adds_its_figures_and_consumes_its_events(store: FleetSimStore) -> None:
    store.replace_devices(0, 2, [_row(i) for i in range(3)], {})
    events = [{"id": i, "day": 3 + i, "idx": i, "kind": "revoke"} for i in range(3)]
    store.commit_batch(new_events=events, daily={(1, "issued:operational"): 2.0})
    store.commit_batch(
        devices=[{"idx": 1, "state": "revoked", "revoked_day": 4}],
        done_events=[0],
        daily={(1, "issued:operational"): 3.0, (2, "issued:operational"): 1.0},
        syncs={("offline", -1, 0): 2},
    )
    store.commit_batch(syncs={("offline", -1, 0): 5})
    assert store.daily() == [(1, "issued:operational", 5.0), (2, "issued:operational", 1.0)]
    assert store.syncs() == [("offline", -1, 0, 7)]
    assert [e.idx for e in store.events_due(4, limit=10)] == [1]
    assert [d.idx for d in store.revoked(after=-1, limit=10)] == [1]


def test_a_failed_batch_writes_nothing(store: FleetSimStore) -> None:
    store.replace_devices(0, 0, [_row(0)], {})
    with pytest.raises(IntegrityError):
        store.commit_batch(
            daily={(1, "issued:operational"): 1.0},
            new_events=[
                {"id": 1, "day": 1, "idx": 0, "kind": "rekey"},
                {"id": 1, "day": 2, "idx": 0, "kind": "rekey"},
            ],
        )
    assert store.daily() == []
    assert store.events_due(10, limit=10) == []


def test_due_devices_come_in_index_order_and_only_live_ones(store: FleetSimStore) -> None:
    rows = [_row(i, state="enrolled", renew_day=5 - i) for i in range(5)]
    rows[2]["state"] = "silent"
    store.replace_devices(0, 4, rows, {})
    due = store.due("renew_day", 3, ["enrolled"], after=-1, limit=10)
    assert [d.idx for d in due] == [3, 4]
    assert [d.idx for d in store.due("renew_day", 5, ["enrolled"], after=0, limit=2)] == [1, 3]


def test_views_and_staleness_group_the_devices(store: FleetSimStore) -> None:
    rows = [_row(i, state="enrolled", last_sync_day=i % 2) for i in range(4)]
    rows.append(_row(4, state="enrolled", profile="always-on"))
    rows.append(_row(5, state="silent", last_sync_day=0))
    store.replace_devices(0, 5, rows, {})
    assert store.sync_views(["enrolled"]) == [
        ("always-on", -1, 1),
        ("intermittent", 0, 2),
        ("intermittent", 1, 2),
    ]
    assert store.staleness(3, ["enrolled"]) == {"intermittent": 2.5}


def test_a_view_holds_the_last_artefact_per_url_up_to_its_day(store: FleetSimStore) -> None:
    store.add_artefacts(0, "crl", [("1/0/full", b"f0"), ("1/0/delta", b"d0")])
    store.add_artefacts(2, "crl", [("1/0/delta", b"d2")])
    store.add_artefacts(5, "crl", [("1/0/full", b"f5")])
    store.add_artefacts(5, "filter", [("full", b"x")])
    assert store.latest_artefacts(3, "crl") == {"1/0/full": (0, b"f0"), "1/0/delta": (2, b"d2")}
    assert store.latest_artefacts(9, "crl")["1/0/full"] == (5, b"f5")
    assert store.latest_artefacts(4, "filter") == {}


def test_stages_are_kept_in_their_order(store: FleetSimStore) -> None:
    for position, name in ((1, "line"), (0, "ceremony")):
        store.record_stage(
            SimStage(
                name=name,
                position=position,
                seconds=1.5,
                cpu_seconds=1.0,
                units=10,
                peak_rss_bytes=1 << 20,
            )
        )
    assert [s.name for s in store.stages()] == ["ceremony", "line"]
