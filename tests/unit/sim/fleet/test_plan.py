"""The seeded plan (``fleetid.sim.fleet.plan``) and the run's options (``options``)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from fleetid.errors import ConfigError
from fleetid.sim.fleet.options import FleetOptions
from fleetid.sim.fleet.plan import plan_for, sync_interval


def _options(**changes: object) -> FleetOptions:
    values: dict[str, object] = {"devices": 1000, "years": 1.0, "state_dir": Path("x"), "seed": 3}
    return FleetOptions(**{**values, **changes})  # type: ignore[arg-type]


def test_a_device_s_plan_depends_on_the_seed_and_its_index_only() -> None:
    options = _options()
    forward = [plan_for(options, i) for i in range(200)]
    backward = [plan_for(options, i) for i in reversed(range(200))][::-1]
    assert forward == backward
    assert forward == [plan_for(_options(devices=5000), i) for i in range(200)]


def test_another_seed_gives_another_fleet() -> None:
    one = [plan_for(_options(seed=1), i) for i in range(200)]
    two = [plan_for(_options(seed=2), i) for i in range(200)]
    assert one != two


def test_the_shares_and_rates_shape_the_fleet() -> None:
    options = _options(revocation_rate=0.1, rekey_share=0.2)
    plans = [plan_for(options, i) for i in range(4000)]
    profiles = Counter(p.profile.value for p in plans)
    fates = Counter(p.fate for p in plans)
    assert 1400 < profiles["always-on"] < 1800  # 40 %
    assert 1400 < profiles["intermittent"] < 1800  # 40 %
    assert 600 < profiles["offline"] < 1000  # 20 %
    assert 300 < fates["revoke"] < 500  # 10 % a year
    assert 650 < fates["rekey"] < 950  # 20 %
    assert all(1 <= p.fate_day <= options.days for p in plans)


def test_sync_intervals_are_bounded_and_offline_ones_land_on_push_days() -> None:
    options = _options()
    intermittent = [sync_interval(options, i, "intermittent", 0) for i in range(500)]
    offline = [sync_interval(options, i, "offline", 0) for i in range(500)]
    assert min(intermittent) >= 1 and max(intermittent) <= 14
    assert all(days % 7 == 0 and days >= 7 for days in offline)
    assert sync_interval(options, 9, "intermittent", 4) == sync_interval(
        options, 9, "intermittent", 4
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"devices": 0}, "1 to 10000000 devices, not 0"),
        ({"years": 0}, "0 to 10 simulated years"),
        ({"workers": -1}, "--workers is at least 1"),
        ({"broken_channel": "smoke"}, "no revocation channel 'smoke'"),
        ({"broken_channel": "ocsp"}, "no revocation channel 'ocsp'"),
        ({"always_on_share": 0.7, "intermittent_share": 0.7}, "connectivity shares"),
        ({"revocation_rate": 0.6, "rekey_share": 0.5}, "lifecycle rates"),
        ({"rekey_share": -0.1}, "lifecycle rates"),
    ],
)
def test_options_out_of_range_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _options(**changes)


def test_the_database_is_named_from_the_url() -> None:
    assert _options().database == "sqlite"
    assert _options(database_url="postgresql+psycopg://h/db").database == "postgresql"
