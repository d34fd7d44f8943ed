"""``fleetid ca init``: the organisation name is checked first; the CA is made all or nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fleetid.authority import ca_init
from fleetid.authority.ca_init import ORGANIZATION_NAME_MAX
from fleetid.authority.fleet_ca import FleetCa
from fleetid.clock import ManualClock
from fleetid.config import Settings
from fleetid.errors import ConfigError

_CLI = "import sys; from fleetid.cli import main; sys.exit(main())"


def _fleetid(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _CLI, *args], capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("x" * 65, "at most 42 bytes"),  # the report's case: over X.520's 64
        ("x" * (ORGANIZATION_NAME_MAX + 1), "at most 42 bytes"),  # room for the CN suffix
        ("é" * 22, "at most 42 bytes"),  # 44 bytes in UTF-8, 22 characters
        ("", "is empty"),
        ("   ", "is empty"),
        (" Acme", "leading or trailing spaces"),
        ("Acme\n", "leading or trailing spaces"),
        ("Ac\x07me", "control characters"),
    ],
)
def test_ca_init_refuses_a_bad_name_and_leaves_nothing(tmp_path: Path, name: str, why: str) -> None:
    """Regression: a name over 64 bytes crashed half-way and left a ``ca`` directory that
    refused the next init; ``--name ''`` made a CA with an empty organisation."""
    data_dir = tmp_path / "authority"
    refused = _fleetid("ca", "init", "--data-dir", str(data_dir), "--name", name)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert refused.stderr.startswith("fleetid: ConfigError: ") and why in refused.stderr
    assert not data_dir.exists()
    made = _fleetid("ca", "init", "--data-dir", str(data_dir), "--name", "Acme")
    assert made.returncode == 0, made.stderr
    assert "O=Acme" in made.stdout


def test_the_longest_name_fits_every_ca_generation(tmp_path: Path) -> None:
    name = "n" * ORGANIZATION_NAME_MAX
    ca = FleetCa.init(Settings.load(tmp_path), clock=ManualClock(), name=name)
    try:
        assert ca_init.ca_name(name, ca_init.CaRole.ISSUING, 999)  # pyca checks the bound
    finally:
        ca.close()


def test_a_failure_after_the_keys_leaves_no_ca_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The certificates are made, then recording them fails: no ``ca`` directory remains,
    nothing is in the database, and the next init succeeds."""
    data_dir = tmp_path / "authority"
    data_dir.mkdir()
    settings = Settings.load(data_dir)

    def failing_add(self: object, key: object) -> None:
        raise ConfigError("the disk is full")

    from fleetid.store import repositories

    with monkeypatch.context() as patch:
        patch.setattr(repositories.CaKeys, "add", failing_add)
        with pytest.raises(ConfigError, match="disk is full"):
            FleetCa.init(settings, clock=ManualClock(), name="Acme")
    assert sorted(p.name for p in data_dir.iterdir() if not p.name.startswith("fleetid.db")) == []
    ca = FleetCa.init(settings, clock=ManualClock(), name="Acme")
    try:
        assert [c.subject.rfc4514_string() for c in ca.chain()] == [
            "CN=Acme Fleet Issuing CA G1,O=Acme",
            "CN=Acme Fleet Root G1,O=Acme",
        ]
    finally:
        ca.close()
