"""A real process kill between download and install: a device process downloads a
package and dies (``os._exit``, no unwinding, as a power cut leaves it) right after its journal
records the download; a new process with the same card flash and journal installs and notifies."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.package_fixtures import BASE, Setup, setup_fixture  # noqa: F401 - the fixture

from fleetid.authority.preparation import PackageState
from fleetid.device.truststore import TrustStore
from fleetid.device.unattended import UnattendedDownloader
from fleetid.se.card import SecureElement
from fleetid.se.client import SecureElementClient

_EXIT = 86

_DEVICE_PROCESS = """
import os, sys
from pathlib import Path
from fleetid.api import create_app
from fleetid.authority.fleet_ca import FleetCa
from fleetid.clock import ManualClock
from fleetid.config import Settings
from fleetid.device.package_transport import HttpPackageTransport, in_process_client
from fleetid.device.truststore import TrustStore
from fleetid.device.unattended import UnattendedDownloader
from fleetid.se.card import SecureElement
from fleetid.se.client import SecureElementClient

data_dir, db_url, base, work = sys.argv[1:5]
clock = ManualClock()
settings = Settings.load(
    Path(data_dir), environ={"FLEETID_DATABASE_URL": db_url, "FLEETID_PUBLIC_URL": base}
)
ca = FleetCa.open(settings, clock=clock)
client = in_process_client(create_app(settings, clock=clock, ca=ca), base)
card = SecureElement.open(Path(work) / "silicon", Path(work) / "flash")
se = SecureElementClient(card)
se.select_identity()


def cut(step):
    if step == "downloaded":
        os._exit(int(sys.argv[5]))


UnattendedDownloader(
    se=se, trust=TrustStore([ca.root]), clock=clock, journal_path=Path(work) / "journal",
    crash=cut,
).run_once(HttpPackageTransport(client, {base: client}))
"""


def test_a_killed_device_process_resumes_from_its_journal(
    setup: Setup, tmp_path: Path, db_url: str
) -> None:
    device = setup.device()
    order = setup.order(device)
    device.card._silicon.save(tmp_path / "silicon")  # the chip, and its flash as a file
    (tmp_path / "flash").write_bytes(device.card.flash.dump())
    data_dir = str(setup.authority.ca.settings.data_dir)
    killed = subprocess.run(
        [sys.executable, "-c", _DEVICE_PROCESS, data_dir, db_url, BASE, str(tmp_path), str(_EXIT)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert killed.returncode == _EXIT, killed.stderr
    assert setup.preparation.status(order.event_id).state == PackageState.DOWNLOADED
    card = SecureElement.open(tmp_path / "silicon", tmp_path / "flash")  # power back on
    se = SecureElementClient(card)
    se.select_identity()
    resumed = UnattendedDownloader(
        se=se,
        trust=TrustStore([setup.authority.ca.root]),
        clock=setup.clock,
        journal_path=tmp_path / "journal",
    )
    assert resumed.pending_step == "downloaded"
    (installed,) = resumed.run_once(setup.transport)
    assert installed.event_id == order.event_id
    assert setup.preparation.status(order.event_id).state == PackageState.INSTALLED
