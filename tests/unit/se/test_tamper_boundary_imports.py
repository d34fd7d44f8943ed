"""The tamper boundary holds in the import graph: host code loads no part of the card.

Each check runs in a fresh interpreter, so that what another test imported does not hide an
import the host side makes.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

_CARD_MODULES = (
    "fleetid.se.card",
    "fleetid.se.applets.identity",
    "fleetid.se.applets.boot",
    "fleetid.se.applets.manager",
    "fleetid.se.applets.base",
    "fleetid.se.applets.piv",
    "fleetid.se.state",
    "fleetid.se.piv_state",
    "fleetid.se.keystore",
    "fleetid.se.scp03.card",
)


def _loaded_after_import(*modules: str) -> set[str]:
    script = (
        "import importlib, json, sys\n"
        f"for name in {list(modules)!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    return set(json.loads(out.stdout))


@pytest.mark.parametrize(
    "host_modules",
    [
        ("fleetid.se.client", "fleetid.device.agent"),
        ("fleetid.se.scp03", "fleetid.se.scp03.host"),
        ("fleetid.se.wire",),
        ("fleetid.se.piv_client", "fleetid.device.piv_enrolment"),
    ],
)
def test_host_side_imports_load_no_card_module(host_modules: tuple[str, ...]) -> None:
    loaded = _loaded_after_import(*host_modules)
    assert set(host_modules) <= loaded
    assert loaded.isdisjoint(_CARD_MODULES), sorted(loaded & set(_CARD_MODULES))


def test_the_check_sees_a_card_import() -> None:
    """The negative case: importing the card does load its internals, so the check can fail."""
    loaded = _loaded_after_import("fleetid.se.card")
    assert {"fleetid.se.card", "fleetid.se.state", "fleetid.se.scp03.card"} <= loaded
