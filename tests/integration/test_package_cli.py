"""``fleetid package order|status`` and ``fleetid discovery list`` against an authority's data
directory, with the device downloading over the HTTP app in between."""

from __future__ import annotations

import pytest
from tests.package_fixtures import BASE, Setup, setup_fixture  # noqa: F401 - the fixture

from fleetid.cli import main
from fleetid.formats.package_messages import discovery_reference


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch, db_url: str) -> None:
    monkeypatch.setenv("FLEETID_DATABASE_URL", db_url)
    monkeypatch.setenv("FLEETID_PUBLIC_URL", BASE)


def test_order_status_and_discovery_list(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    data_dir = str(setup.authority.ca.settings.data_dir)
    device = setup.device()
    config = setup.authority.ca.settings.data_dir / "bundle.json"
    config.write_text('{"ntp": "time.example"}')
    order = ["package", "order", "--data-dir", data_dir, "--device", device.serial]
    assert main([*order, "--kind", "configuration", "--content", str(config)]) == 0
    event_id, state = capsys.readouterr().out.split()[:2]
    assert state == "released"
    assert main(["discovery", "list", "--data-dir", data_dir]) == 0
    listed = capsys.readouterr().out.split()
    assert listed == [discovery_reference(device.serial), event_id, f"{BASE}/preparation"]
    assert device.serial not in " ".join(listed)  # the index holds a hash, not the identity
    (installed,) = setup.downloader(device).run_once(setup.transport)
    assert installed.public == b'{"ntp": "time.example"}'
    assert main(["package", "status", "--data-dir", data_dir, event_id]) == 0
    assert capsys.readouterr().out.split()[-1] == "installed"
    assert main(["discovery", "list", "--data-dir", data_dir]) == 0
    assert capsys.readouterr().out == ""


def test_refusals_are_one_line_and_a_failure_status(
    setup: Setup, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = str(setup.authority.ca.settings.data_dir)
    unknown = ["package", "order", "--data-dir", data_dir, "--device", "NOPE"]
    assert main([*unknown, "--kind", "configuration", "--content", __file__]) == 1
    assert main(["package", "status", "--data-dir", data_dir, "0" * 32]) == 1
    device = setup.device()
    empty = ["package", "order", "--data-dir", data_dir, "--device", device.serial]
    assert main([*empty, "--kind", "configuration"]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3 and all(line.startswith("fleetid: ") for line in lines)
    assert "NotOnManifestError" in lines[0] and "NotFoundError" in lines[1]
    assert "needs content" in lines[2]
