"""Kill ``fleetid line run`` at each step, restart it, and check log, manifest and cards agree.

The process really dies (``os._exit`` from the ``FLEETID_LINE_CRASH`` hook, so no ``finally``
runs and nothing is flushed on the way out); cards live in files (sealed flash + fuse) and the
manifest and log in SQLite, exactly as the CLI leaves them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fleetid.clock import SystemClock
from fleetid.factory import ceremony
from fleetid.factory.auditlog import AuditLogReader, load_verifier_key
from fleetid.factory.line import CRASH_ENV, CRASH_POINTS, UnitState, open_line
from fleetid.se.client import SecureElementClient
from fleetid.se.state import CardLifeCycle
from fleetid.sim.wafer import Wafer

HAPPY = ["identified", "injection", "certification", "installation", "lock"]
_RUN = "import sys; from fleetid.cli import main; sys.exit(main())"


def _line_run(data: Path, keys: Path, crash: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    if crash is not None:
        env[CRASH_ENV] = crash
    args = ["line", "run", "--devices", "4", "--data-dir", str(data), "--batch-size", "4"]
    args += ["--transport-keys", str(keys), "--defect", "3:store-data-fails"]
    return subprocess.run(
        [sys.executable, "-c", _RUN, *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=300,
    )


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_kill_at_each_step_then_resume(tmp_path: Path, point: str) -> None:
    clock = SystemClock()
    config = ceremony.write_example_config(tmp_path / "cfg")
    data = tmp_path / "data"
    outcome = ceremony.init_ceremony(ceremony.CeremonyConfig.load(config), data, clock=clock)
    ceremony.activate(data, ceremony.read_shares(outcome.share_files[1:4]), clock=clock)
    keys = tmp_path / "cfg" / "transport-keys.toml"

    crashed = _line_run(data, keys, point)
    assert crashed.returncode == 86, crashed.stdout + crashed.stderr
    resumed = _line_run(data, keys, None)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr

    wafer = Wafer.open(data / "wafer" / "LOT1")  # the default lot
    line = open_line(data, clock=clock)
    manifest = {entry.unit: entry for entry in line.manifest()}
    assert len(manifest) == 4
    reader = AuditLogReader(data, outcome.record.log_origin)
    for index, unit in enumerate(wafer.units):
        entry = manifest[unit.unit]
        kinds = [e.kind for e in reader.entries_for_serial(entry.serial)]
        client = SecureElementClient(wafer.power_on(unit.unit))
        client.select_isd()
        life_cycle = client.life_cycle()
        if index == 3:
            assert entry.state is UnitState.QUARANTINED
            assert kinds[-1] == "quarantine" and "lock" not in kinds
            assert life_cycle is not CardLifeCycle.SECURED
            continue
        assert entry.state is UnitState.SECURED, entry.reason
        assert kinds == HAPPY  # each event once: nothing duplicated, nobody skipped
        assert life_cycle is CardLifeCycle.SECURED
        client.select_identity()
        assert client.attestation_chain()[0] == entry.idevid
        assert client.get_public_key(0xF0).public_key == entry.attestation_public_key
    _, key = load_verifier_key(data)
    reader.verify_all(key)

    again = _line_run(data, keys, None)
    assert again.returncode == 0 and "processed 0 (already done 4)" in again.stdout
