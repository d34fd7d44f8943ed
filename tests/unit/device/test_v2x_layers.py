"""Imports point downward: the vehicle's V2X code is a client and loads no server code, and the
trust store and V2X policy it shares with the authorities sit below both (ARCHITECTURE.md)."""

from __future__ import annotations

import subprocess
import sys

import pytest

_SERVER = ("fleetid.authority", "fleetid.api", "fleetid.store", "fleetid.cli")
_SERVICES = (*_SERVER, "fleetid.device", "fleetid.factory", "fleetid.revocation", "fleetid.sim")


def _loaded_by(module: str) -> list[str]:
    """The fleetid modules a fresh interpreter has loaded after importing ``module``."""
    code = (
        "import importlib, sys\n"
        f"importlib.import_module({module!r})\n"
        "print('\\n'.join(m for m in sys.modules if m.startswith('fleetid.')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return result.stdout.split()


def _under(modules: list[str], packages: tuple[str, ...]) -> list[str]:
    return [m for m in modules if m in packages or m.startswith(tuple(p + "." for p in packages))]


def test_the_vehicle_loads_no_server_code() -> None:
    loaded = _loaded_by("fleetid.device.v2x")
    assert "fleetid.trust.v2x" in loaded  # the probe sees what it should
    assert _under(loaded, _SERVER) == []


@pytest.mark.parametrize(
    "module", ["fleetid.trust.v2x", "fleetid.policy.v2x", "fleetid.formats.ieee1609.validity"]
)
def test_what_vehicles_and_authorities_share_loads_no_service(module: str) -> None:
    assert _under(_loaded_by(module), _SERVICES) == []


def test_the_probe_sees_server_code() -> None:
    """The check can fail: the authorities' package does load server code (its stores)."""
    assert _under(_loaded_by("fleetid.authority.v2x"), _SERVER) != []
