"""``fleetid line run --lot``: one factory data directory runs many wafer lots, black-box."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from tests.authority_server import fleetid

pytestmark = pytest.mark.slow


def _factory(tmp: Path) -> tuple[Path, str, dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETID_")}
    cfg, data = tmp / "cfg", tmp / "factory"
    for step in (
        ("ceremony", "example", "--out", str(cfg)),
        ("ceremony", "init", "--config", str(cfg / "ceremony.toml"), "--data-dir", str(data)),
    ):
        assert fleetid(*step, env=env).returncode == 0
    shares = sorted((data / "shares").glob("*.toml"))[:3]
    activate = ["ceremony", "activate", "--data-dir", str(data)]
    for share in shares:
        activate += ["--share", str(share)]
    assert fleetid(*activate, env=env).returncode == 0
    return data, str(cfg / "transport-keys.toml"), env


def test_one_factory_runs_a_second_lot(tmp_path: Path) -> None:
    """Regression: ``line run --lot LOT2`` on a directory holding LOT1 processed LOT1 again
    (nothing to do) and exited 0, so LOT2 was never made."""
    data, keys, env = _factory(tmp_path)
    run = ["line", "run", "--devices", "2", "--data-dir", str(data)]
    first = fleetid(*run, "--transport-keys", keys, env=env)
    assert first.returncode == 0, first.stderr
    assert "lot LOT1: processed 2" in first.stdout

    unmade = fleetid(*run, "--lot", "LOT2", env=env)
    assert unmade.returncode == 1 and unmade.stdout == ""
    assert unmade.stderr == (
        "fleetid: ConfigError: no wafer lot LOT2 yet: pass --transport-keys to fabricate it\n"
    )

    second = fleetid(*run, "--lot", "LOT2", "--transport-keys", keys, env=env)
    assert second.returncode == 0, second.stderr
    assert "lot LOT2: processed 2 (already done 0): 2 secured" in second.stdout
    again = fleetid(*run, "--lot", "LOT1", env=env)
    assert "lot LOT1: processed 0 (already done 2)" in again.stdout

    status = fleetid("line", "status", "--data-dir", str(data), env=env)
    units = [line.split()[0] for line in status.stdout.splitlines()]
    assert units == ["LOT1-000000", "LOT1-000001", "LOT2-000000", "LOT2-000001"]
    lots = {
        p.name: json.loads((p / "wafer.json").read_text())["lot"]
        for p in (data / "wafer").iterdir()
    }
    assert lots == {"LOT1": "LOT1", "LOT2": "LOT2"}

    # The device CLI finds a unit of either lot from the factory's wafer directory.
    for unit in ("LOT1-000001", "LOT2-000001"):
        shown = fleetid(
            "device", "status", "--wafer", str(data / "wafer"), "--unit", unit,
            "--state", str(tmp_path / unit), env=env,
        )  # fmt: skip
        assert shown.returncode == 0, shown.stderr
        assert "factory (not enrolled)" in shown.stdout


def test_a_lot_name_that_is_not_a_directory_name_is_refused(tmp_path: Path) -> None:
    data, keys, env = _factory(tmp_path)
    for lot in ("../elsewhere", "a/b", ".hidden", ""):
        ran = fleetid(
            "line", "run", "--devices", "1", "--data-dir", str(data), "--lot", lot,
            "--transport-keys", keys, env=env,
        )  # fmt: skip
        assert ran.returncode == 1 and "a lot name is 1 to 64" in ran.stderr, (lot, ran.stderr)
    assert not (tmp_path / "elsewhere").exists() and not (data / "wafer").exists()
