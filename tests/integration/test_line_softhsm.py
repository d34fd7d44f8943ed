"""The ceremony and the line on SoftHSM2 through PKCS#11 (the same code as on the software HSM)."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.hsm_fixtures import SO_PIN, make_softhsm, softhsm_session

from fleetid.clock import ManualClock
from fleetid.errors import CeremonyError, HsmError, HsmNotActivatedError
from fleetid.factory import ceremony
from fleetid.factory.auditlog import AuditLogReader, load_verifier_key
from fleetid.factory.line import UnitState, open_line
from fleetid.se.scp03 import StaticKeys
from fleetid.sim.wafer import Defect, Wafer

pytestmark = pytest.mark.softhsm


@pytest.fixture(scope="module")
def softhsm_conf(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield from softhsm_session(tmp_path_factory)


def test_ceremony_and_line_on_softhsm2(tmp_path: Path, softhsm_conf: Path) -> None:
    token, module = make_softhsm(softhsm_conf)
    clock = ManualClock()
    path = ceremony.write_example_config(tmp_path / "cfg", backend="pkcs11", token_label=token)
    path.write_text(path.read_text() + f'module = "{module}"\n')
    data = tmp_path / "data"
    outcome = ceremony.init_ceremony(
        ceremony.CeremonyConfig.load(path), data, clock=clock, so_pin=SO_PIN
    )
    ceremony.verify_transcript(outcome.record)

    with pytest.raises(HsmNotActivatedError):
        open_line(data, clock=clock)
    with pytest.raises(CeremonyError, match="needs 3 of 5"):
        ceremony.activate(data, ceremony.read_shares(outcome.share_files[:2]), clock=clock)
    hsm = ceremony.activate(data, ceremony.read_shares(outcome.share_files[2:]), clock=clock)
    with pytest.raises(HsmError, match="export is refused"):
        hsm.export_private(outcome.record.root_label)
    hsm.lock()

    doc = tomllib.loads((tmp_path / "cfg" / "transport-keys.toml").read_text())
    transport = StaticKeys(**{k: bytes.fromhex(doc[k]) for k in ("enc", "mac", "dek")})
    wafer = Wafer.fabricate(
        None, lot="S", count=3, transport_keys=transport, defects={2: Defect.BAD_KCV}
    )
    line = open_line(data, clock=clock)
    report = line.run([u.unit for u in wafer.units], wafer)
    assert (report.secured, report.quarantined) == (2, 1)
    for entry in line.manifest()[:2]:
        assert entry.state is UnitState.SECURED and entry.idevid is not None
        entry.idevid.verify_directly_issued_by(outcome.record.line_ca_certificate)
    _, key = load_verifier_key(data)
    AuditLogReader(data, outcome.record.log_origin).verify_all(key)
