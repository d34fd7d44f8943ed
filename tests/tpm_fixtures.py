"""Fixtures for TPM-rooted devices: Debian's swtpm started per test (a new TPM, new seeds), the
TPM stack (tpm2-pytss), and a TEST manufacturer that provisions them.

A test that needs a TPM skips without swtpm or tpm2-pytss, naming what to install, and fails
instead under ``CI=true`` (``tests.optional``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fleetid.clock import ManualClock
from fleetid.sim.demo_tpm import SoftwareTpmLine
from fleetid.tpm.device import TpmDevice
from fleetid.tpm.stack import TPM_EXTRA
from fleetid.tpm.swtpm import Swtpm
from tests.optional import require_module, require_tool

__all__ = ["require_tpm", "tpm_fixture", "tpm_line_fixture", "two_tpms_fixture"]


def require_tpm() -> None:
    """tpm2-pytss and swtpm, or skip (fail under CI)."""
    require_module("tpm2_pytss", install=TPM_EXTRA)
    require_tool("swtpm")


@pytest.fixture(name="tpm")
def tpm_fixture() -> Iterator[TpmDevice]:
    """A fresh software TPM, stopped (and its state removed) after the test."""
    require_tpm()
    with Swtpm() as swtpm, TpmDevice(swtpm.tcti) as device:
        yield device


@pytest.fixture(name="other_tpm")
def two_tpms_fixture() -> Iterator[TpmDevice]:
    """A second, independent software TPM (another EK, another AK)."""
    require_tpm()
    with Swtpm() as swtpm, TpmDevice(swtpm.tcti) as device:
        yield device


@pytest.fixture(name="tpm_line")
def tpm_line_fixture() -> SoftwareTpmLine:
    return SoftwareTpmLine.create(clock=ManualClock())
