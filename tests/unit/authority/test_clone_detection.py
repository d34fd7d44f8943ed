"""CloneDetector: each of the four signals quarantines (certificateHold), plausible contacts do
not, and a quarantined device is not flagged twice."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from tests.revocation_fixtures import open_fleet

from fleetid.authority.clone_detection import CloneDetector, CloneSignal, Sighting
from fleetid.authority.fleet_ca import FleetCa
from fleetid.clock import ManualClock
from fleetid.crypto.keys import new_private_key
from fleetid.errors import ConfigError
from fleetid.policy import CredentialType
from fleetid.store.schema import CertificateStatus, DeviceStatus, RevocationReason

DEVICE = "DEV-0001"
WINDOW = timedelta(minutes=15)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))


@pytest.fixture
def ca(tmp_path: Path, clock: ManualClock) -> Iterator[FleetCa]:
    fleet = open_fleet(tmp_path, f"sqlite:///{tmp_path / 'fleet.db'}", clock)
    with fleet.store.transaction() as tx:
        tx.devices.add(DEVICE, DeviceStatus.ENROLLED, clock.now(), provisioner="attestation")
    yield fleet
    fleet.close()


def _issue(ca: FleetCa, device_id: str = DEVICE) -> tuple[x509.Certificate, int]:
    with ca.store.transaction() as tx:
        certificate, record = ca.issue(
            tx,
            public_key=new_private_key().public_key(),
            credential_type=CredentialType.OPERATIONAL,
            common_name=device_id,
            device_id=device_id,
        )
    return certificate, record.id


def _serial(certificate: x509.Certificate) -> str:
    return f"{certificate.serial_number:040x}"


def _seen(
    certificate: x509.Certificate,
    source: str,
    at: datetime,
    *,
    counter: int | None = None,
    nonce: bytes | None = None,
) -> Sighting:
    return Sighting(
        device_id=DEVICE,
        credential_serial=_serial(certificate),
        source=source,
        at=at,
        counter=counter,
        nonce=nonce,
    )


def _statuses(ca: FleetCa) -> list[tuple[CertificateStatus, RevocationReason | None]]:
    with ca.store.transaction() as tx:
        return [(c.status, c.revocation_reason) for c in tx.certificates.for_device(DEVICE)]


def test_two_places_within_the_window_quarantine_the_identity(
    ca: FleetCa, clock: ManualClock
) -> None:
    certificate, _ = _issue(ca)
    detector = CloneDetector(ca.store, clock, session_window=WINDOW)
    start = clock.now()
    assert detector.observe(_seen(certificate, "site-A", start)) is None
    found = detector.observe(_seen(certificate, "site-B", start + timedelta(minutes=7)))
    assert found is not None and found.signal is CloneSignal.CONCURRENT_SESSIONS
    assert found.held == (_serial(certificate),)
    assert _statuses(ca) == [(CertificateStatus.REVOKED, RevocationReason.CERTIFICATE_HOLD)]
    assert detector.quarantined(DEVICE)
    # Flagged once: further contacts add nothing.
    assert detector.observe(_seen(certificate, "site-C", start + timedelta(minutes=8))) is None
    assert len(detector.detections) == 1


def test_one_place_or_places_apart_in_time_are_plausible(ca: FleetCa, clock: ManualClock) -> None:
    certificate, _ = _issue(ca)
    detector = CloneDetector(ca.store, clock, session_window=WINDOW)
    start = clock.now()
    for minutes in (0, 15, 30):  # one device checking in from home
        assert (
            detector.observe(_seen(certificate, "home", start + timedelta(minutes=minutes))) is None
        )
    # The device moved: its next contact from elsewhere comes after the window.
    assert detector.observe(_seen(certificate, "depot", start + timedelta(minutes=46))) is None
    assert _statuses(ca) == [(CertificateStatus.VALID, None)]
    assert not detector.quarantined(DEVICE)


def test_a_superseded_credential_presented_again_is_a_regression(
    ca: FleetCa, clock: ManualClock
) -> None:
    old, _ = _issue(ca)
    new, new_id = _issue(ca)
    with ca.store.transaction() as tx:
        tx.certificates.supersede(_serial(old), new_id)
    detector = CloneDetector(ca.store, clock, session_window=WINDOW)
    assert detector.observe(_seen(new, "home", clock.now())) is None
    found = detector.observe(_seen(old, "home", clock.now() + timedelta(hours=5)))
    assert found is not None and found.signal is CloneSignal.CREDENTIAL_REGRESSION
    assert _serial(new) in found.detail


def test_a_counter_that_goes_down_and_a_nonce_answered_twice(
    ca: FleetCa, clock: ManualClock
) -> None:
    certificate, _ = _issue(ca)
    detector = CloneDetector(ca.store, clock, session_window=WINDOW)
    hour = timedelta(hours=1)
    assert detector.observe(_seen(certificate, "home", clock.now(), counter=7)) is None
    assert detector.observe(_seen(certificate, "home", clock.now() + hour, counter=9)) is None
    found = detector.observe(_seen(certificate, "home", clock.now() + 2 * hour, counter=8))
    assert found is not None and found.signal is CloneSignal.COUNTER_REGRESSION

    # The nonce rule, on a device of its own (the first one is quarantined now).
    with ca.store.transaction() as tx:
        tx.devices.add("DEV-0003", DeviceStatus.ENROLLED, clock.now(), provisioner="attestation")
    second, _ = _issue(ca, "DEV-0003")

    def seen(at: datetime, nonce: bytes) -> Sighting:
        return Sighting(
            device_id="DEV-0003",
            credential_serial=_serial(second),
            source="home",
            at=at,
            nonce=nonce,
        )

    nonce = b"n" * 32
    assert detector.observe(seen(clock.now(), nonce)) is None
    assert detector.observe(seen(clock.now() + hour, b"m" * 32)) is None
    again = detector.observe(seen(clock.now() + 2 * hour, nonce))
    assert again is not None and again.signal is CloneSignal.NONCE_REUSE


def test_the_history_is_the_stores_so_every_process_shares_it(
    ca: FleetCa, clock: ManualClock
) -> None:
    certificate, _ = _issue(ca)
    first = CloneDetector(ca.store, clock, session_window=WINDOW)
    second = CloneDetector(ca.store, clock, session_window=WINDOW)  # another worker
    assert first.observe(_seen(certificate, "site-A", clock.now())) is None
    found = second.observe(_seen(certificate, "site-B", clock.now() + timedelta(minutes=3)))
    assert found is not None and found.signal is CloneSignal.CONCURRENT_SESSIONS
    assert first.quarantined(DEVICE) and first.detections == []


def test_another_devices_credential_is_not_a_regression(ca: FleetCa, clock: ManualClock) -> None:
    with ca.store.transaction() as tx:
        tx.devices.add("DEV-0002", DeviceStatus.ENROLLED, clock.now(), provisioner="attestation")
    old, _ = _issue(ca, "DEV-0002")
    _, new_id = _issue(ca, "DEV-0002")
    with ca.store.transaction() as tx:
        tx.certificates.supersede(_serial(old), new_id)
    detector = CloneDetector(ca.store, clock, session_window=WINDOW)
    # The sighting names DEVICE with DEV-0002's old serial: not DEVICE's regression.
    assert detector.observe(_seen(old, "home", clock.now())) is None


def test_the_detection_callback_and_the_window_bound(ca: FleetCa, clock: ManualClock) -> None:
    certificate, _ = _issue(ca)
    seen = []
    detector = CloneDetector(ca.store, clock, session_window=WINDOW, on_detection=seen.append)
    detector.observe(_seen(certificate, "a", clock.now()))
    detector.observe(_seen(certificate, "b", clock.now()))
    assert [d.signal for d in seen] == [CloneSignal.CONCURRENT_SESSIONS]
    with pytest.raises(ConfigError):
        CloneDetector(ca.store, clock, session_window=timedelta(0))
