"""The TPM demo stage: on swtpm it enrols, refreshes and refuses the two drills; without a
software TPM it says why and the rest of the demo goes on."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from tests.tpm_fixtures import require_tpm

from fleetid.sim import demo_tpm
from fleetid.sim.demo import DemoContext, _stages


def _context() -> DemoContext:
    return DemoContext(devices=1, console=Console(file=io.StringIO(), width=200))


def test_the_stage_is_one_of_the_demo() -> None:
    assert sum(stage is demo_tpm.stage_tpm for _, stage in _stages()) == 1


def test_the_stage_enrols_refreshes_and_refuses_the_drills() -> None:
    require_tpm()
    ctx = _context()
    demo_tpm.stage_tpm(ctx)
    assert dict(ctx.report)["TPM-rooted device"] == (
        "enrolled, refreshed; drill: 2 forgeries refused"
    )
    output = ctx.console.file.getvalue()  # type: ignore[attr-defined]
    assert "drill: the same evidence again: refused" in output
    assert "drill: a duplicable TPM key (fixedTPM clear): refused" in output
    assert "fixedTPM or fixedParent is clear" in output


def test_without_swtpm_the_stage_says_so_and_skips(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    ctx = _context()
    demo_tpm.stage_tpm(ctx)
    assert dict(ctx.report)["TPM-rooted device"] == "skipped: no software TPM here"
    output = ctx.console.file.getvalue()  # type: ignore[attr-defined]
    assert "skipped: swtpm is not installed (Debian: apt-get install swtpm swtpm-tools)" in output
