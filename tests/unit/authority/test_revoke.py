"""revoke_device_certificates, the one loop over a device's valid certificates: the operator's
revoke_device, a release to another authority and an enrolment that supersedes a device's earlier
credentials all revoke through it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from tests.revocation_fixtures import open_fleet

from fleetid.authority.fleet_ca import FleetCa
from fleetid.authority.revoke import revoke_device, revoke_device_certificates
from fleetid.clock import ManualClock
from fleetid.errors import NotFoundError, PolicyError
from fleetid.policy import CredentialType
from fleetid.store.repositories import CertificateRecord
from fleetid.store.schema import CertificateStatus, DeviceStatus


@pytest.fixture
def ca(tmp_path: Path) -> Iterator[FleetCa]:
    authority = open_fleet(tmp_path / "ca", f"sqlite:///{tmp_path}/ca.db", ManualClock())
    yield authority
    authority.close()


def _issue(ca: FleetCa, device_id: str, count: int) -> list[CertificateRecord]:
    records = []
    with ca.store.transaction() as tx:
        if tx.devices.get(device_id) is None:
            tx.devices.add(device_id, DeviceStatus.ENROLLED, ca.clock.now(), provisioner="token")
        for _ in range(count):
            _, record = ca.issue(
                tx,
                public_key=ec.generate_private_key(ec.SECP256R1()).public_key(),
                credential_type=CredentialType.OPERATIONAL,
                common_name=device_id,
                device_id=device_id,
            )
            records.append(record)
    return records


def _status(ca: FleetCa, device_id: str) -> dict[str, tuple[str, int | None]]:
    with ca.store.transaction() as tx:
        return {
            c.serial: (c.status, c.superseded_by) for c in tx.certificates.for_device(device_id)
        }


def test_every_valid_certificate_and_no_other_is_revoked(ca: FleetCa) -> None:
    first, second, third = _issue(ca, "dev-1", 3)
    (other,) = _issue(ca, "dev-2", 1)
    with ca.store.transaction() as tx:
        tx.certificates.revoke(first.serial, "keyCompromise", ca.clock.now())
    with ca.store.transaction() as tx:
        done = revoke_device_certificates(tx, "dev-1", "cessationOfOperation", ca.clock.now())
    assert sorted(r.serial for r in done) == sorted([second.serial, third.serial])
    assert {r.reason for r in done} == {"cessationOfOperation"}
    assert _status(ca, "dev-1")[first.serial][0] == CertificateStatus.REVOKED
    assert _status(ca, "dev-2") == {other.serial: (CertificateStatus.VALID, None)}


def test_a_successor_stays_valid_and_supersedes_the_others(ca: FleetCa) -> None:
    old, older, successor = _issue(ca, "dev-1", 3)
    with ca.store.transaction() as tx:
        done = revoke_device_certificates(
            tx, "dev-1", "superseded", ca.clock.now(), successor=successor
        )
    assert sorted(r.serial for r in done) == sorted([old.serial, older.serial])
    status = _status(ca, "dev-1")
    assert status[successor.serial] == (CertificateStatus.VALID, None)
    assert status[old.serial] == (CertificateStatus.REVOKED, successor.id)
    assert status[older.serial] == (CertificateStatus.REVOKED, successor.id)


def test_a_device_without_valid_certificates_revokes_nothing(ca: FleetCa) -> None:
    with ca.store.transaction() as tx:
        assert revoke_device_certificates(tx, "nobody", "superseded", ca.clock.now()) == []


def test_revoke_device_refuses_a_device_revoked_already_and_an_unknown_one(ca: FleetCa) -> None:
    (certificate,) = _issue(ca, "dev-1", 1)
    done = revoke_device(ca.store, "dev-1", "keyCompromise", clock=ca.clock)
    assert [r.serial for r in done] == [certificate.serial]
    with pytest.raises(PolicyError, match="already revoked"):
        revoke_device(ca.store, "dev-1", "keyCompromise", clock=ca.clock)
    with pytest.raises(NotFoundError):
        revoke_device(ca.store, "dev-unknown", "keyCompromise", clock=ca.clock)
