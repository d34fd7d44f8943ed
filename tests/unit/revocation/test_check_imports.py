"""The relying party's checkers are pure: importing one loads none of the authority's weight.

Each checker is imported in a fresh interpreter, which then lists what it loaded: no SQLAlchemy,
numpy, CA, HSM or store may be among it (the import-linter contract in pyproject.toml says the
same of the import graph; this checks what actually runs).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

FORBIDDEN = ("sqlalchemy", "numpy", "fleetid.authority", "fleetid.hsm", "fleetid.store")

_PROBE = """
import json, sys
import {module}
print(json.dumps(sorted(sys.modules)))
"""


@pytest.mark.parametrize(
    "module",
    [
        "fleetid.revocation.check.ocsp",
        "fleetid.revocation.check.crl",
        "fleetid.revocation.check.filter",
        "fleetid.device.crl_client",
    ],
)
def test_importing_a_checker_loads_no_authority_store_hsm_or_numpy(module: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE.format(module=module)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    loaded = json.loads(out)
    assert module in loaded
    offending = [
        name
        for name in loaded
        if any(name == forbidden or name.startswith(forbidden + ".") for forbidden in FORBIDDEN)
    ]
    assert offending == []
