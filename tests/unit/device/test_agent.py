"""The device agent against an in-process authority (ASGI), on SQLite and PostgreSQL: enrol, a
simulated year of refreshes, re-key, rollover of the issuing CA and of the root, authority change,
revocation; and the negative twin of each."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tests.attestation_fixtures import Authority, make_authority

from fleetid.authority.lifecycle import REENROLL_PATH, roll_root, sign_proof
from fleetid.authority.revoke import revoke_device
from fleetid.clock import ManualClock
from fleetid.device.agent import AgentState, DeviceAgent
from fleetid.device.truststore import TrustStore
from fleetid.errors import AuthenticationError, PolicyError, RolloverRefusedError, VerificationError
from fleetid.factory.line import CANONICAL_KEY_HANDLE
from fleetid.policy import CredentialType
from fleetid.revocation.registry import CertificateState, RevocationRegistry
from fleetid.se.client import SecureElementSigner
from fleetid.sim.software_line import LineDevice, SoftwareLine
from fleetid.store.schema import CertificateStatus, DeviceStatus


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def line(clock: ManualClock) -> SoftwareLine:
    return SoftwareLine(clock=clock)


@pytest.fixture
def authority(
    tmp_path: Path, db_url: str, clock: ManualClock, line: SoftwareLine
) -> Iterator[Authority]:
    made = make_authority(tmp_path / "a", db_url, clock, [line.root])
    yield made
    made.close()


@pytest.fixture
def device(authority: Authority, line: SoftwareLine) -> LineDevice:
    made = line.make_device()
    authority.import_devices(made)
    return made


def _agent(authority: Authority, device: LineDevice, clock: ManualClock) -> DeviceAgent:
    cadence = authority.ca.settings.policy.profile(CredentialType.OPERATIONAL).cadence
    return DeviceAgent(
        se=device.client(), clock=clock, cadence=cadence, trust=TrustStore([authority.ca.root])
    )


def _certificates(authority: Authority, device_id: str) -> list[object]:
    with authority.ca.store.transaction() as tx:
        return list(tx.certificates.for_device(device_id))


def test_enrol_by_attestation(authority: Authority, device: LineDevice, clock: ManualClock) -> None:
    agent = _agent(authority, device, clock)
    credential = agent.enrol(authority.transport)
    assert agent.state is AgentState.ENROLLED
    assert agent.device_id == device.serial
    assert credential.certificate.issuer == authority.ca.issuing.certificate.subject
    with authority.ca.store.transaction() as tx:
        record = tx.devices.require(device.serial)
    assert record.status == DeviceStatus.ENROLLED
    assert record.provisioner == "attestation"
    assert record.idevid_key_sha256 is not None


def test_enrol_refused_when_not_on_the_manifest(
    authority: Authority, line: SoftwareLine, clock: ManualClock
) -> None:
    stranger = line.make_device()  # made, never imported here
    agent = _agent(authority, stranger, clock)
    with pytest.raises(VerificationError, match="not on a manifest"):
        agent.enrol(authority.transport)
    assert agent.state is AgentState.FACTORY
    # The agent left no key behind: only the line's (canonical key, attestation key) remain.
    assert {h for h, _, _ in stranger.client().list_keys()} == {CANONICAL_KEY_HANDLE, 0xF0}


def test_a_simulated_year_of_refreshes(
    authority: Authority, device: LineDevice, clock: ManualClock
) -> None:
    agent = _agent(authority, device, clock)
    agent.enrol(authority.transport)
    handle = agent.credential.handle  # type: ignore[union-attr]
    actions = []
    for _ in range(365):
        clock.advance(timedelta(days=1))
        window = agent.window
        actions.append(agent.tick(authority.transport))
        if actions[-1] == "refresh":
            # The authority's renewal window (RFC 9773) decided: the first daily tick in it.
            assert window is not None
            assert window.start <= clock.now() < window.start + timedelta(days=1)
    cadence = agent.cadence
    # Each window starts in the first half of the cadence's renewal window (policy.renewal_window).
    earliest = cadence.lifetime - cadence.renewal_window
    expected = actions.count("refresh")
    assert 365 // (earliest + cadence.renewal_window / 2).days <= expected <= 365 // earliest.days
    assert "recover" not in actions
    assert agent.credential.handle == handle  # type: ignore[union-attr]  # refresh keeps the key
    records = _certificates(authority, device.serial)
    assert len(records) == expected + 1
    # D1: a routine refresh lets the old credential expire: nothing is revoked, so nothing of
    # the year is on a CRL or in the filter; each old one is linked to its successor.
    assert all(r.status == CertificateStatus.VALID for r in records)  # type: ignore[attr-defined]
    assert RevocationRegistry(authority.ca.store).watermark() == 0
    successors = [r.superseded_by for r in records]  # type: ignore[attr-defined]
    assert successors[-1] is None and None not in successors[:-1]


def test_a_refreshed_credential_is_not_revoked_and_cannot_refresh_again(
    authority: Authority, device: LineDevice, clock: ManualClock
) -> None:
    agent = _agent(authority, device, clock)
    old = agent.enrol(authority.transport)
    new = agent.refresh(authority.transport)
    with authority.ca.store.transaction() as tx:
        previous = tx.certificates.by_serial(old.serial)
        successor = tx.certificates.by_serial(new.serial)
    assert previous.status == CertificateStatus.VALID
    assert previous.superseded_by == successor.id
    issuer = authority.ca.issuing.record.id
    state = RevocationRegistry(authority.ca.store).status(issuer, int(old.serial, 16)).state
    assert state is CertificateState.GOOD
    # The old credential no longer re-enrols: only its successor does.
    agent.credential = old
    with pytest.raises(AuthenticationError, match="superseded by a refresh"):
        agent.refresh(authority.transport)
    assert agent.state is not AgentState.REVOKED


def test_rekey_replaces_the_key_and_supersedes_the_old_credential(
    authority: Authority, device: LineDevice, clock: ManualClock
) -> None:
    agent = _agent(authority, device, clock)
    old = agent.enrol(authority.transport)
    new = agent.rekey(authority.transport)
    assert agent.state is AgentState.REKEYED
    assert new.handle != old.handle
    assert new.certificate.public_key() != old.certificate.public_key()
    assert old.handle not in [h for h, _, _ in device.client().list_keys()]
    with authority.ca.store.transaction() as tx:
        previous = tx.certificates.by_serial(old.serial)
    assert previous.status == CertificateStatus.REVOKED
    assert previous.revocation_reason == "superseded"


def test_refresh_with_a_revoked_credential_is_refused(
    authority: Authority, device: LineDevice, clock: ManualClock
) -> None:
    agent = _agent(authority, device, clock)
    agent.enrol(authority.transport)
    revoke_device(authority.ca.store, device.serial, "keyCompromise", clock=clock)
    with pytest.raises(AuthenticationError, match="revoked"):
        agent.refresh(authority.transport)
    assert agent.state is AgentState.REVOKED
    with pytest.raises(PolicyError):
        agent.enrol(authority.transport)


def test_revoked_device_cannot_come_back_with_its_idevid(
    authority: Authority, device: LineDevice, clock: ManualClock
) -> None:
    agent = _agent(authority, device, clock)
    agent.enrol(authority.transport)
    revoke_device(authority.ca.store, device.serial, "keyCompromise", clock=clock)
    fresh = _agent(authority, device, clock)
    with pytest.raises(VerificationError, match="revoked"):
        fresh.enrol(authority.transport)


def test_refresh_with_an_expired_credential_is_refused_and_tick_recovers(
    authority: Authority, device: LineDevice, clock: ManualClock
) -> None:
    agent = _agent(authority, device, clock)
    first = agent.enrol(authority.transport)
    clock.set(first.not_after + timedelta(seconds=1))
    with pytest.raises(AuthenticationError, match="expired"):
        agent.refresh(authority.transport)
    assert agent.tick(authority.transport) == "recover"
    assert agent.credential.not_after > clock.now()  # type: ignore[union-attr]
    with authority.ca.store.transaction() as tx:
        assert tx.certificates.by_serial(first.serial).revocation_reason == "superseded"


def test_proof_replay_and_forgery_are_refused(
    authority: Authority, device: LineDevice, clock: ManualClock
) -> None:
    agent = _agent(authority, device, clock)
    credential = agent.enrol(authority.transport)
    nonce = authority.transport.challenge(device.serial)
    csr = agent._refresh_request()
    proof = sign_proof(
        SecureElementSigner(agent.se, credential.handle),
        serial=credential.serial,
        nonce=nonce,
        path=REENROLL_PATH,
        body=csr,
    )
    renewed = authority.transport.simple_reenroll(csr, proof)
    with pytest.raises(AuthenticationError):  # same nonce again; and the old credential is gone
        authority.transport.simple_reenroll(csr, proof)
    forged = sign_proof(
        SecureElementSigner(agent.se, credential.handle),
        serial=f"{renewed.serial_number:040x}",
        nonce=authority.transport.challenge(device.serial),
        path=REENROLL_PATH,
        body=csr,
    )
    other = ec.generate_private_key(ec.SECP256R1())
    forged = type(forged)(
        serial=forged.serial,
        nonce=forged.nonce,
        signature=other.sign(b"anything", ec.ECDSA(hashes.SHA256())),
    )
    with pytest.raises(AuthenticationError, match="does not verify"):
        authority.transport.simple_reenroll(csr, forged)


def test_issuing_ca_rollover(authority: Authority, device: LineDevice, clock: ManualClock) -> None:
    agent = _agent(authority, device, clock)
    before = agent.enrol(authority.transport)
    authority.roll_issuing()
    after = agent.refresh(authority.transport)
    assert after.certificate.issuer != before.certificate.issuer
    assert after.certificate.issuer == authority.service.ca.issuing.certificate.subject
    assert len(agent.trust.anchors) == 1  # the root did not change


def test_root_rollover_is_followed_and_a_forged_root_is_refused(
    authority: Authority, device: LineDevice, clock: ManualClock
) -> None:
    agent = _agent(authority, device, clock)
    agent.enrol(authority.transport)
    ca, rollover = roll_root(authority.service.ca)
    authority.service.replace_ca(ca)
    renewed = agent.refresh(authority.transport)
    assert rollover.new_root in agent.trust.anchors
    assert renewed.certificate.issuer == rollover.issuing.subject
    # A forged "new root": self-signed, with a link signed by the forger's own key.
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Totally Legit Root")])
    forged = _self_signed_ca(name, key, clock)
    bag = [*authority.transport.cacerts(), forged, _self_signed_ca(name, key, clock)]
    anchors = agent.trust.anchors
    with pytest.raises(RolloverRefusedError):
        agent.trust.accept_update(bag, clock.now())
    assert agent.trust.anchors == anchors


def _self_signed_ca(
    name: x509.Name, key: ec.EllipticCurvePrivateKey, clock: ManualClock
) -> x509.Certificate:
    now = clock.now()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA384())
    )


def test_authority_change(
    tmp_path: Path,
    backend: str,
    database_url_for: object,
    authority: Authority,
    device: LineDevice,
    line: SoftwareLine,
    clock: ManualClock,
) -> None:
    url_b: str = database_url_for(backend)  # type: ignore[operator]
    other = make_authority(
        tmp_path / "b", url_b, clock, [line.root], name="Fleet B", base_url="http://fleet-b.test"
    )
    try:
        agent = _agent(authority, device, clock)
        old = agent.enrol(authority.transport)
        # B does not list the device yet: the move is refused, A keeps the device.
        with pytest.raises(VerificationError, match="not on a manifest"):
            agent.transfer(authority.transport, other.transport, other.ca.root)
        other.import_devices(device)
        # The failed attempt released at A already; a device released at A re-enrols at B.
        assert agent.state is AgentState.TRANSFERRED
        agent.enrol(other.transport)
        assert agent.credential.certificate.issuer == other.ca.issuing.certificate.subject  # type: ignore[union-attr]
        with authority.ca.store.transaction() as tx:
            assert tx.devices.require(device.serial).status == DeviceStatus.TRANSFERRED
            assert tx.certificates.by_serial(old.serial).revocation_reason == "cessationOfOperation"
        with pytest.raises(VerificationError, match="moved to another authority"):
            _agent(authority, device, clock).enrol(authority.transport)
    finally:
        other.close()
