"""``fleetid line run --workers 2``: two line processes on one lot. Same outcome as one process
(duplicates across the slices refused, quarantines, each event once); killed at each step and
resumed, log, manifest and cards agree."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fleetid.clock import SystemClock
from fleetid.errors import ConfigError
from fleetid.factory import ceremony
from fleetid.factory.auditlog import AuditLogReader, load_verifier_key
from fleetid.factory.line import CRASH_ENV, CRASH_POINTS, UnitState, open_line
from fleetid.factory.line_pool import split_units
from fleetid.se.client import SecureElementClient
from fleetid.se.state import CardLifeCycle
from fleetid.sim.wafer import Wafer

HAPPY = ["identified", "injection", "certification", "installation", "lock"]
_RUN = "import sys; from fleetid.cli import main; sys.exit(main())"
DEVICES = 6
QUARANTINED = 1  # in the first slice
CLONE, SOURCE = 5, 0  # unit 5 (second slice) presents unit 0's serial (first slice)


def _line_run(
    data: Path, keys: Path, crash: str | None, workers: int = 2
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    if crash is not None:
        env[CRASH_ENV] = crash
    args = ["line", "run", "--devices", str(DEVICES), "--data-dir", str(data)]
    args += ["--batch-size", "2", "--workers", str(workers), "--transport-keys", str(keys)]
    args += ["--defect", f"{QUARANTINED}:store-data-fails", "--clone", f"{CLONE}:{SOURCE}"]
    return subprocess.run(
        [sys.executable, "-c", _RUN, *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=600,
    )


def _ceremony(tmp_path: Path) -> tuple[Path, Path, str]:
    clock = SystemClock()
    config = ceremony.write_example_config(tmp_path / "cfg")
    data = tmp_path / "data"
    outcome = ceremony.init_ceremony(ceremony.CeremonyConfig.load(config), data, clock=clock)
    ceremony.activate(data, ceremony.read_shares(outcome.share_files[:3]), clock=clock)
    return data, tmp_path / "cfg" / "transport-keys.toml", outcome.record.log_origin


def _check_agreement(data: Path, origin: str) -> None:
    """Every unit final; log, manifest and the cards themselves say the same thing."""
    wafer = Wafer.open(data / "wafer" / "LOT1")  # the default lot
    manifest = {entry.unit: entry for entry in open_line(data, clock=SystemClock()).manifest()}
    assert len(manifest) == DEVICES
    reader = AuditLogReader(data, origin)
    # The source chip and its clone sit in different workers' slices: whichever presents the
    # serial first is provisioned, the other is refused as a duplicate. Exactly one of each.
    pair = [wafer.units[SOURCE].unit, wafer.units[CLONE].unit]
    refused = [u for u in pair if manifest[u].state is UnitState.DUPLICATE]
    assert len(refused) == 1, [manifest[u].state for u in pair]
    clone = refused[0]
    (source,) = [u for u in pair if u != clone]
    for index, unit in enumerate(wafer.units):
        entry = manifest[unit.unit]
        client = SecureElementClient(wafer.power_on(unit.unit))
        client.select_isd()
        life_cycle = client.life_cycle()
        if unit.unit == clone:
            assert entry.state is UnitState.DUPLICATE
            assert life_cycle is CardLifeCycle.OP_READY  # never touched
            continue
        kinds = [e.kind for e in reader.entries_for_serial(entry.serial)]
        if unit.unit == source:
            kinds = [k for k in kinds if k != "duplicate-serial"]  # the clone's refusal
        if index == QUARANTINED:
            assert entry.state is UnitState.QUARANTINED
            assert kinds[-1] == "quarantine" and "lock" not in kinds
            assert life_cycle is not CardLifeCycle.SECURED
            continue
        assert entry.state is UnitState.SECURED, entry.reason
        assert kinds == HAPPY  # each event once: nothing duplicated, nobody skipped
        assert life_cycle is CardLifeCycle.SECURED
        client.select_identity()
        assert client.attestation_chain()[0] == entry.idevid
    duplicates = [e for e in reader.entries() if e.kind == "duplicate-serial"]
    assert len(duplicates) == 1
    _, key = load_verifier_key(data)
    reader.verify_all(key)


def test_split_units_is_contiguous_and_balanced() -> None:
    units = [f"U{i}" for i in range(7)]
    assert split_units(units, 3) == [["U0", "U1", "U2"], ["U3", "U4"], ["U5", "U6"]]
    assert split_units(units, 1) == [units]
    assert split_units(units[:2], 4) == [["U0"], ["U1"]]
    assert split_units([], 2) == []


@pytest.mark.parametrize("workers", [0, -1])
def test_split_units_refuses_no_workers(workers: int) -> None:
    with pytest.raises(ConfigError):
        split_units(["U0"], workers)


def test_two_workers_provision_the_lot_like_one(tmp_path: Path) -> None:
    data, keys, origin = _ceremony(tmp_path)
    ran = _line_run(data, keys, None)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "4 secured, 1 quarantined, 1 duplicate serials refused" in ran.stdout
    _check_agreement(data, origin)
    again = _line_run(data, keys, None)
    assert again.returncode == 0 and f"processed 0 (already done {DEVICES})" in again.stdout


def test_zero_workers_is_refused(tmp_path: Path) -> None:
    data, keys, _ = _ceremony(tmp_path)
    ran = _line_run(data, keys, None, workers=0)
    assert ran.returncode == 1 and "worker" in ran.stderr


# A kill under the pool takes two line processes and a resume, about 10 s a point: the default
# run kills at the first point, CI (which runs `slow`) at every one. test_line_crash_resume
# kills the one-process line at every point in both runs.
POOL_CRASH_POINTS = [
    CRASH_POINTS[0],
    *(pytest.param(point, marks=pytest.mark.slow) for point in CRASH_POINTS[1:]),
]


@pytest.mark.parametrize("point", POOL_CRASH_POINTS)
def test_kill_a_worker_at_each_step_then_resume(tmp_path: Path, point: str) -> None:
    data, keys, origin = _ceremony(tmp_path)
    crashed = _line_run(data, keys, point)
    assert crashed.returncode == 1, crashed.stdout + crashed.stderr
    assert "line worker died" in crashed.stderr
    resumed = _line_run(data, keys, None)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    _check_agreement(data, origin)
