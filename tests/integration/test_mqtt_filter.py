"""The offline filter over a real Mosquitto broker (127.0.0.1:1883; ``.ci/run`` starts it).

Retained full filter and cumulative delta reach a device that connects later; updates reach a
connected device; a retained message replaced by an older watermark is refused by the device
(rollback) and the device keeps its newer filter; a forged filter is refused.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from tests.optional import require_tcp
from tests.peer_fixtures import NOW, Pki

from fleetid.authority.fleet_ca import FleetCa
from fleetid.authority.revoke import revoke_serial
from fleetid.cli import main
from fleetid.clock import ManualClock, SystemClock
from fleetid.config import Settings
from fleetid.crypto.signer import SoftwareSigner
from fleetid.device.truststore import TrustStore
from fleetid.device.verifier import PeerStatus, PeerVerifier
from fleetid.errors import CertificateRevokedError, FilterRollbackError, VerificationError
from fleetid.policy import CredentialType
from fleetid.policy.connectivity import policy_for
from fleetid.revocation.channels import FilterReceiver, MqttFilterPublisher, MqttFilterSubscriber
from fleetid.revocation.check.filter import filter_certificate_id
from fleetid.revocation.filter.builder import build_delta

# The broker under test: $FLEETID_TEST_MQTT as HOST:PORT (default: Mosquitto on loopback).
_HOST, _, _PORT = os.environ.get("FLEETID_TEST_MQTT", "127.0.0.1:1883").rpartition(":")
BROKER = (_HOST, int(_PORT))
WAIT = 10.0


@pytest.fixture(scope="module", autouse=True)
def _broker() -> None:
    require_tcp(*BROKER, what="MQTT broker (Debian package mosquitto)")


@pytest.fixture
def prefix() -> str:
    # Retained messages persist in the broker: every test gets its own topics.
    return f"fleetid-test/{uuid.uuid4().hex}"


@pytest.fixture
def pki() -> Pki:
    return Pki()


@pytest.fixture
def publisher(prefix: str) -> Iterator[MqttFilterPublisher]:
    client = MqttFilterPublisher(*BROKER, topic_prefix=prefix)
    yield client
    client.clear()
    client.close()


def _device(pki: Pki) -> PeerVerifier:
    return PeerVerifier(
        trust=TrustStore([pki.root]),
        policy=policy_for("offline"),
        clock=ManualClock(NOW),
        issuers=[pki.issuing],
    )


def _subscribe(device: PeerVerifier, prefix: str) -> tuple[FilterReceiver, MqttFilterSubscriber]:
    receiver = FilterReceiver(device)
    return receiver, MqttFilterSubscriber(receiver, *BROKER, topic_prefix=prefix)


def test_retained_pair_reaches_a_device_that_connects_later(
    pki: Pki, prefix: str, publisher: MqttFilterPublisher
) -> None:
    good, early, late = pki.leaf(), pki.leaf(), pki.leaf()
    full = pki.filter([early], [good, late], watermark=10)
    delta = build_delta(
        [filter_certificate_id(late)],
        [filter_certificate_id(good)],
        base=full,
        watermark=11,
        coverage_until=NOW - timedelta(minutes=30),
        signer=pki.signer,
    )
    publisher.publish(full)
    publisher.publish(delta)
    device = _device(pki)
    receiver, subscriber = _subscribe(device, prefix)
    try:
        assert receiver.wait_until(lambda r: device.filter_watermark == 11, WAIT)
    finally:
        subscriber.close()
    assert receiver.bytes_received == len(full) + len(delta)
    assert device.verify(good).status is PeerStatus.VALID
    for revoked in (early, late):
        with pytest.raises(CertificateRevokedError):
            device.assess(revoked)


def test_connected_device_gets_updates_and_refuses_rollback(
    pki: Pki, prefix: str, publisher: MqttFilterPublisher
) -> None:
    a = pki.leaf()
    older = pki.filter([], [a], watermark=1)
    newer = pki.filter([a], [], watermark=2)
    publisher.publish(older)
    device = _device(pki)
    receiver, subscriber = _subscribe(device, prefix)
    try:
        assert receiver.wait_until(lambda r: device.filter_watermark == 1, WAIT)
        publisher.publish(newer)
        assert receiver.wait_until(lambda r: device.filter_watermark == 2, WAIT)
        publisher.publish(older)  # the retained message replaced by an older watermark
        assert receiver.wait_until(lambda r: len(r.refused) == 1, WAIT)
    finally:
        subscriber.close()
    assert isinstance(receiver.refused[0].error, FilterRollbackError)
    assert device.filter_watermark == 2
    with pytest.raises(CertificateRevokedError):
        device.assess(a)


def test_forged_filter_on_the_topic_is_refused(
    pki: Pki, prefix: str, publisher: MqttFilterPublisher
) -> None:
    a = pki.leaf()
    forged = pki.filter(
        [], [a], watermark=99, signer=SoftwareSigner(ec.generate_private_key(ec.SECP256R1()))
    )
    publisher.publish(forged)
    device = _device(pki)
    receiver, subscriber = _subscribe(device, prefix)
    try:
        assert receiver.wait_until(lambda r: len(r.refused) == 1, WAIT)
    finally:
        subscriber.close()
    assert isinstance(receiver.refused[0].error, VerificationError)
    assert device.filter_watermark is None
    assert device.assess(a).status is PeerStatus.STALE


def test_full_filter_clears_the_retained_delta(
    pki: Pki, prefix: str, publisher: MqttFilterPublisher
) -> None:
    a = pki.leaf()
    full_1 = pki.filter([], [a], watermark=1)
    delta = build_delta(
        [filter_certificate_id(a)],
        [],
        base=full_1,
        watermark=2,
        coverage_until=NOW - timedelta(minutes=30),
        signer=pki.signer,
    )
    full_3 = pki.filter([a], [], watermark=3, coverage_until=NOW - timedelta(minutes=20))
    publisher.publish(full_1)
    publisher.publish(delta)
    publisher.publish(full_3)
    device = _device(pki)
    receiver, subscriber = _subscribe(device, prefix)
    try:
        assert receiver.wait_until(lambda r: device.filter_watermark == 3, WAIT)
    finally:
        subscriber.close()
    assert receiver.bytes_received == len(full_3)  # the stale delta is no longer retained
    assert not receiver.refused


def test_cli_publish_retains_the_filter_on_the_broker(tmp_path: Path, prefix: str) -> None:
    settings = Settings.load(tmp_path / "ca", environ={"FLEETID_PUBLIC_URL": "http://ca.test"})
    clock = ManualClock(SystemClock().now() - timedelta(hours=1))
    ca = FleetCa.init(settings, clock=clock, name="MQTT Fleet")
    try:
        with ca.store.transaction() as tx:
            certificate, _ = ca.issue(
                tx,
                public_key=ec.generate_private_key(ec.SECP256R1()).public_key(),
                credential_type=CredentialType.OPERATIONAL,
                common_name="device",
                device_id=None,
            )
        revoke_serial(ca.store, f"{certificate.serial_number:x}", "keyCompromise", clock=clock)
        device = PeerVerifier(
            trust=TrustStore([ca.root]),
            policy=policy_for("offline"),
            clock=SystemClock(),
            issuers=[ca.issuing.certificate],
        )
    finally:
        ca.close()
    out = tmp_path / "filter.fidf"
    args = ["filter", "publish", "--data-dir", str(settings.data_dir), "--out", str(out)]
    assert main([*args, "--mqtt", "127.0.0.1:1883", "--topic-prefix", prefix]) == 0
    receiver, subscriber = _subscribe(device, prefix)
    try:
        assert receiver.wait_until(lambda r: device.filter_watermark == 1, WAIT)
    finally:
        subscriber.close()
        cleaner = MqttFilterPublisher(*BROKER, topic_prefix=prefix)
        cleaner.clear()
        cleaner.close()
    assert receiver.bytes_received == len(out.read_bytes())
    with pytest.raises(CertificateRevokedError):
        device.assess(certificate)
