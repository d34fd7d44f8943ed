"""The fleet simulation end to end (``fleetid.sim.fleet``): small fleets through the line,
enrolment and two simulated weeks; the report; the convergence check; seeds; resume after a
real kill; the CLI's refusals."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from tests.authority_server import fleetid
from tests.fleet_fixtures import run_small

from fleetid.sim.fleet.report_html import PLOTS

_REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One uninterrupted run of seed 5, shared by the tests that read its report."""
    root = tmp_path_factory.mktemp("fleet")
    report = run_small(root / "state", report_dir=root / "report")
    return {"report": report.data, "dir": root / "report"}


@pytest.mark.slow
def test_a_small_fleet_lives_its_weeks_and_converges(baseline: dict[str, Any]) -> None:
    data = baseline["report"]
    assert data["devices"] == 36 and data["years"] == 0.06 and data["database"] == "sqlite"
    assert [s["name"] for s in data["stages"]] == [
        "ceremony",
        "line",
        "enrolment",
        "lifecycle",
        "convergence check",
    ]
    for stage in data["stages"]:
        assert set(stage) >= {"name", "seconds", "units", "units_per_second"}
    assert data["stages"][1]["units"] == 36
    states = data["figures"]["fleet_states"]
    assert sum(states.values()) == 36
    # Every kind of life happened: quarantined chips, revoked, re-keyed and moved devices.
    for state in ("quarantined", "revoked", "rekeyed", "transferred", "enrolled"):
        assert states.get(state, 0) > 0, states
    daily = data["figures"]["daily"]
    assert daily["action:enrol"]["0"] == 36 - states["quarantined"]
    assert sum(daily["action:refresh"].values()) > 0  # 30-day credentials renew from day 20
    assert data["converged"] is True
    conv = data["figures"]["convergence"]
    assert conv["revoked_peers"] > 0 and conv["checks"] > 0
    assert conv["reasons"].get("CertificateRevokedError", 0) > 0  # rejected as revoked
    assert data["peak_rss_bytes"] > 0 and data["wall_seconds"] > 0


@pytest.mark.slow
def test_the_report_files_sit_side_by_side(baseline: dict[str, Any]) -> None:
    directory: Path = baseline["dir"]
    on_disk = json.loads((directory / "report.json").read_text())
    assert on_disk == json.loads(json.dumps(baseline["report"]))
    page = (directory / "report.html").read_text()
    for key, _ in PLOTS:
        assert f'id="plot-{key}"' in page
    assert "<script" not in page
    # Nothing to load from elsewhere (namespace URIs in the SVG's metadata load nothing).
    assert not re.search(r"""(src|href|url)\s*[=(]\s*["']?(https?:)?//""", page)


@pytest.mark.parametrize(
    ("broken", "profile"),
    [
        (None, None),
        ("crl", "intermittent"),
        pytest.param("filter", "offline", marks=pytest.mark.slow),
    ],
)
def test_a_broken_revocation_channel_fails_the_check(
    broken: str | None, profile: str | None, tmp_path: Path
) -> None:
    """One channel stops publishing after day 0: the check finds the devices of its profile
    accepting revoked peers, and only those; with every channel working it finds none."""
    report = run_small(
        tmp_path / "state", devices=20, years=0.02, revocation_rate=15.0, broken_channel=broken
    )
    conv = report.data["figures"]["convergence"]
    assert conv["revoked_peers"] > 0
    assert report.data["converged"] is (broken is None)
    failing = {p for p, n in conv["failing_devices"].items() if n}
    assert failing == ({profile} if profile else set())


@pytest.mark.slow
def test_the_same_seed_gives_the_same_fleet_events_and_figures(
    baseline: dict[str, Any], tmp_path: Path
) -> None:
    again = run_small(tmp_path / "again").data
    assert again["figures"] == baseline["report"]["figures"]
    other = run_small(tmp_path / "other", seed=6).data
    assert other["figures"]["daily"] != baseline["report"]["figures"]["daily"]


def _day_done(state: Path) -> int:
    """The child's last finished day, read-only (the child migrates and writes the database)."""
    database = state / "authority-a" / "fleetid.db"
    if not database.exists():
        return -1
    try:
        with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as conn:
            row = conn.execute("SELECT value FROM fleet_sim_meta WHERE key = 'day_done'").fetchone()
    except sqlite3.OperationalError:  # not made yet, or locked for a moment
        return -1
    return -1 if row is None else int(row[0])


@pytest.mark.slow
def test_a_run_killed_mid_year_resumes_to_the_same_figures(
    baseline: dict[str, Any], tmp_path: Path
) -> None:
    state, log = tmp_path / "state", tmp_path / "child.log"
    with log.open("wb") as stderr:
        child = subprocess.Popen(
            [sys.executable, "-m", "tests.fleet_fixtures", str(state), "5"],
            cwd=_REPO,
            env={**os.environ, "PYTHONPATH": str(_REPO)},
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        deadline = time.monotonic() + 300
        while _day_done(state) < 4 and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert child.poll() is None, log.read_text()
        child.send_signal(signal.SIGKILL)
        assert child.wait() == -signal.SIGKILL
    killed_at = _day_done(state)
    assert 4 <= killed_at < 22  # killed in the middle of the simulated weeks
    resumed = run_small(state, resume=True).data
    assert resumed["figures"] == baseline["report"]["figures"]


def test_resume_refuses_other_options_and_an_empty_state(tmp_path: Path) -> None:
    from fleetid.errors import ConfigError

    with pytest.raises(ConfigError, match="nothing to resume"):
        run_small(tmp_path / "none", resume=True)
    run_small(tmp_path / "state", devices=4, years=0.01)
    with pytest.raises(ConfigError, match="holds a run already"):
        run_small(tmp_path / "state", devices=4, years=0.01)
    with pytest.raises(ConfigError, match="started with other options"):
        run_small(tmp_path / "state", devices=4, years=0.02, resume=True)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--report", "r"], "--database-url, --workers and --report need --years"),
        (["--years", "1"], "the fleet simulation needs --devices N and --years Y"),
        (["--years", "1", "--devices", "0"], "1 to 10000000 devices, not 0"),
        (["--years", "-1", "--devices", "5"], "0 to 10 simulated years, not -1.0"),
    ],
)
def test_the_cli_refuses_a_bad_fleet_in_one_line(
    argv: list[str], message: str, tmp_path: Path
) -> None:
    ran = fleetid("demo", *argv, "--state", str(tmp_path / "s"))
    assert ran.returncode == 1 and ran.stdout == ""
    assert ran.stderr.startswith("fleetid: ConfigError: ") and message in ran.stderr
    assert ran.stderr.count("\n") == 1


def test_the_cli_runs_a_fleet_and_writes_its_report(tmp_path: Path) -> None:
    ran = fleetid(
        "demo",
        "--devices",
        "8",
        "--years",
        "0.01",
        "--seed",
        "2",
        "--state",
        str(tmp_path / "state"),
        "--report",
        str(tmp_path / "report"),
        env={**os.environ, "COLUMNS": "80"},
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "fleet of 8 devices" in ran.stdout and "converged" in ran.stdout
    assert max(len(line) for line in ran.stdout.splitlines()) <= 80
    data = json.loads((tmp_path / "report" / "report.json").read_text())
    assert data["devices"] == 8 and data["seed"] == 2
    assert (tmp_path / "report" / "report.html").exists()
