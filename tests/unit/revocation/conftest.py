"""A fleet on a manual clock, on SQLite and PostgreSQL (a module may define its own instead)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.revocation_fixtures import open_fleet

from fleetid.authority.fleet_ca import FleetCa
from fleetid.clock import ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def ca(tmp_path: Path, db_url: str, clock: ManualClock) -> Iterator[FleetCa]:
    authority = open_fleet(tmp_path, db_url, clock)
    yield authority
    authority.close()
