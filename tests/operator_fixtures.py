"""An authority with a small history for the operator's commands: two devices, certificates
enrolled, refreshed, re-keyed and revoked, and tokens, all recorded through the real CA."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from fleetid import cli
from fleetid.authority.fleet_ca import FleetCa
from fleetid.authority.revoke import revoke_serial
from fleetid.clock import ManualClock
from fleetid.config import Settings
from fleetid.crypto.keys import new_private_key
from fleetid.policy import CredentialType
from fleetid.store.repositories import CertificateRecord
from fleetid.store.schema import DeviceStatus

__all__ = ["Authority", "authority", "run_cli"]

BASE = "http://pki.example.com"


@dataclass(frozen=True)
class Authority:
    data_dir: Path
    enrolled: CertificateRecord  # gw-1's first
    refreshed: CertificateRecord  # gw-1, same key
    rekeyed: CertificateRecord  # gw-1, new key, revoked (keyCompromise)
    other: CertificateRecord  # gw-2's, expires in 2 days


def _issue(ca: FleetCa, device_id: str, key: ec.EllipticCurvePrivateKey) -> CertificateRecord:
    with ca.store.transaction() as tx:
        if tx.devices.get(device_id) is None:
            tx.devices.add(device_id, DeviceStatus.ENROLLED, ca.clock.now(), provisioner="token")
        _, record = ca.issue(
            tx,
            public_key=key.public_key(),
            credential_type=CredentialType.OPERATIONAL,
            common_name=device_id,
            device_id=device_id,
        )
    return record


@pytest.fixture
def authority(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Authority]:
    """A CA in ``tmp_path/authority`` whose CLI sees the same database and public URL."""
    for name in list(os.environ):
        if name.startswith("FLEETID_"):
            monkeypatch.delenv(name)
    data_dir = tmp_path / "authority"
    # The CLI reads the system clock: the history ends a day before now.
    clock = ManualClock(datetime.now(UTC) - timedelta(days=28))
    settings = Settings.load(data_dir, environ={"FLEETID_PUBLIC_URL": BASE})
    ca = FleetCa.init(settings, clock=clock, name="Operator Fleet")
    try:
        other = _issue(ca, "gw-2", new_private_key())  # 30 days: expires in 2 days
        clock.advance(timedelta(days=25))
        key = new_private_key()
        enrolled = _issue(ca, "gw-1", key)
        clock.advance(timedelta(days=1))
        refreshed = _issue(ca, "gw-1", key)
        clock.advance(timedelta(days=1))
        rekeyed = _issue(ca, "gw-1", new_private_key())
        revoke_serial(ca.store, rekeyed.serial, "keyCompromise", clock=clock)
    finally:
        ca.close()
    (data_dir / "fleetid.toml").write_text(f'public_url = "{BASE}"\n')
    yield Authority(
        data_dir=data_dir, enrolled=enrolled, refreshed=refreshed, rekeyed=rekeyed, other=other
    )


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``fleetid ARGV`` in process: exit status, stdout, stderr."""
    try:
        status = cli.main(list(argv))
    except SystemExit as exc:  # argparse's refusals
        status = int(exc.code or 0)
    out, err = capsys.readouterr()
    return status, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> object:
    status, out, err = run_cli(capsys, *argv, "--json")
    assert status == 0, err
    return json.loads(out)
