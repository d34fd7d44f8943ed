"""``fleetid demo`` over the CLI: every fault it injects is labelled a drill; bad counts refused."""

from __future__ import annotations

import os

import pytest
from tests.authority_server import fleetid

pytestmark = pytest.mark.slow

# Each failure the demo causes on purpose, as the output words it.
_DRILLS = (
    "drill: activation with 2 of 5 refused",
    "drill: attestation key generation failed",  # the defective chip, quarantined
    "duplicate drill: serial",  # the cloned chip, refused
    "drill: tampered image refused",
    "drill: glitching a bench sample",
    "drill: bench sample",
    "drill: 1 revoked for key compromise on day 300",
    "drill: revoked (keyCompromise)",
    "drill: a revoked device replays its old OCSP staple",
    "drill: 4/4 CAMs refused once the AA is on the CA CRL",
    "drill: a replayed assertion refused",
    # report rows
    "drill: line: defective chip quarantined / cloned serial refused",
    "drill: tampered images refused",
    "drill: glitched bench sample zeroised",
    "drill: fleet: revoked for key compromise",
    "drill: revocation: old OCSP staple of a revoked device",
    "drill: v2x nist: CAMs refused after AA revocation",
    "drill: threat flash-extraction (SE / software)",
)


def test_the_demo_labels_every_injected_fault_as_a_drill() -> None:
    """Regression: the report showed injected quarantines, revocations and tamper events with
    nothing to tell them from real faults of the run."""
    ran = fleetid("demo", "--devices", "4", env={**os.environ, "COLUMNS": "250"})
    assert ran.returncode == 0, ran.stdout + ran.stderr
    missing = [label for label in _DRILLS if label not in ran.stdout]
    assert not missing, ran.stdout


@pytest.mark.parametrize("count", ["0", "-3", "10001"])
def test_the_demo_refuses_a_device_count_out_of_range(count: str) -> None:
    """Regression: 0 raised IndexError and -3 ValueError, each with a traceback."""
    ran = fleetid("demo", "--devices", count)
    assert ran.returncode == 1 and ran.stdout == ""
    assert ran.stderr == f"fleetid: ConfigError: the demo makes 1 to 10000 devices, not {count}\n"
