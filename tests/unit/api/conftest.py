"""An authority and its app for the HTTP edge's tests (a module may define its own instead)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.asgi_app import BASE

from fleetid.api import create_app
from fleetid.authority.fleet_ca import FleetCa
from fleetid.clock import ManualClock
from fleetid.config import Settings


@pytest.fixture
def ca(tmp_path: Path) -> Iterator[FleetCa]:
    settings = Settings.load(tmp_path, environ={"FLEETID_PUBLIC_URL": BASE})
    authority = FleetCa.init(settings, clock=ManualClock(), name="Edge Fleet")
    yield authority
    authority.close()


@pytest.fixture
def app(ca: FleetCa) -> Any:
    return create_app(ca.settings, clock=ca.clock, ca=ca)
