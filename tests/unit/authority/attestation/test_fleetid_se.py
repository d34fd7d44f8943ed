"""The fleetid-se evidence verifier: every rule accepts genuine evidence and refuses its twin.

Runs on SQLite and PostgreSQL (``store`` fixture). Genuine evidence comes from emulated cards made
by ``SoftwareLine`` with the provisioning line's certificate profiles; forged evidence is built in
software where no genuine card would emit it.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tests.attestation_fixtures import (
    attested_csr,
    card_evidence,
    forge_key_attestation,
    new_challenge,
    software_csr,
    software_key_props,
    store_fixture,  # noqa: F401 - the parametrised "store" fixture
)

from fleetid import errors as e
from fleetid.authority.attestation import (
    AttestedDevice,
    RepositoryLedger,
    VerificationPolicy,
    verify_attested_csr,
)
from fleetid.clock import ManualClock
from fleetid.crypto.signer import SoftwareSigner
from fleetid.errors import VerificationError
from fleetid.factory.manufacturer import certificate_fingerprint
from fleetid.formats.attestation import KeyOrigin, KeyUsage
from fleetid.formats.csr_attestation import (
    FLEETID_SE_KEY_ATTESTATION_OID,
    AttestationBundle,
    AttestationStatement,
)
from fleetid.sim.software_line import LineDevice, SoftwareLine
from fleetid.store.repositories import ManifestRecord, Store
from fleetid.store.schema import DeviceStatus

DER = serialization.Encoding.DER


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def line(clock: ManualClock) -> SoftwareLine:
    return SoftwareLine(clock=clock)


@pytest.fixture
def policy(line: SoftwareLine) -> VerificationPolicy:
    return VerificationPolicy(manufacturer_roots=(line.root,))


def _on_manifest(store: Store, device: LineDevice, state: str = "secured") -> None:
    with store.transaction() as tx:
        tx.manifest.add(device.manifest_record(state), device.idevid.not_valid_before_utc)


def _verify(
    store: Store,
    csr: x509.CertificateSigningRequest,
    policy: VerificationPolicy,
    clock: ManualClock,
) -> AttestedDevice:
    with store.transaction() as tx:
        return verify_attested_csr(csr, policy=policy, ledger=RepositoryLedger(tx), now=clock.now())


@pytest.fixture
def device(store: Store, line: SoftwareLine) -> LineDevice:
    made = line.make_device()
    _on_manifest(store, made)
    return made


# --- the genuine case ---------------------------------------------------------------------------


def test_genuine_evidence_is_accepted_and_spends_the_challenge(
    store: Store, device: LineDevice, policy: VerificationPolicy, clock: ManualClock
) -> None:
    nonce = new_challenge(store, clock)
    csr = attested_csr(device.client(), nonce)
    result = _verify(store, csr, policy, clock)
    assert result.device_id == device.serial
    assert result.chip_serial == device.chip_serial
    assert result.format == "fleetid-se"
    assert result.challenge == nonce
    assert result.public_key.public_numbers() == csr.public_key().public_numbers()  # type: ignore[union-attr]
    assert result.key_properties.origin == KeyOrigin.GENERATED_ON_CARD
    assert result.tcb_info is not None and result.tcb_info.vendor
    with store.transaction() as tx:
        record = tx.challenges.get(nonce)
    assert record is not None and record.used_at == clock.now()


def test_every_refusal_is_a_verification_error_with_a_distinct_reason() -> None:
    codes = e.reason_codes()
    assert len(codes) == 24  # 21 of the CSR gate, 3 of FIDO registration
    assert all(issubclass(cls, VerificationError) for cls in codes.values())


# --- software key instead of an SE key -----------------------------------------------------------


def test_csr_without_evidence_is_refused(
    store: Store, device: LineDevice, policy: VerificationPolicy, clock: ManualClock
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device.serial)]))
        .sign(key, hashes.SHA256())
    )
    with pytest.raises(e.EvidenceMissingError):
        _verify(store, csr, policy, clock)


def test_attestation_of_another_key_is_refused(
    store: Store, device: LineDevice, policy: VerificationPolicy, clock: ManualClock
) -> None:
    """Genuine evidence for an SE key, but the CSR is for a software key the host holds."""
    nonce = new_challenge(store, clock)
    _, bundle = card_evidence(device.client(), nonce)
    csr = software_csr(SoftwareSigner(ec.generate_private_key(ec.SECP256R1())), bundle)
    with pytest.raises(e.KeyMismatchError):
        _verify(store, csr, policy, clock)
    with store.transaction() as tx:
        record = tx.challenges.get(nonce)
    assert record is not None and record.used_at is None


# --- the challenge -----------------------------------------------------------------------------


def test_replayed_challenge_is_refused(
    store: Store, device: LineDevice, policy: VerificationPolicy, clock: ManualClock
) -> None:
    nonce = new_challenge(store, clock)
    client = device.client()
    _verify(store, attested_csr(client, nonce), policy, clock)
    with pytest.raises(e.ChallengeReplayedError):
        _verify(store, attested_csr(client, nonce), policy, clock)


def test_expired_challenge_is_refused(
    store: Store, device: LineDevice, policy: VerificationPolicy, clock: ManualClock
) -> None:
    nonce = new_challenge(store, clock, ttl=timedelta(minutes=5))
    csr = attested_csr(device.client(), nonce)
    clock.advance(timedelta(minutes=5))
    with pytest.raises(e.ChallengeExpiredError):
        _verify(store, csr, policy, clock)


def test_unexpired_challenge_at_the_last_moment_is_accepted(
    store: Store, device: LineDevice, policy: VerificationPolicy, clock: ManualClock
) -> None:
    nonce = new_challenge(store, clock, ttl=timedelta(minutes=5))
    csr = attested_csr(device.client(), nonce)
    clock.advance(timedelta(minutes=5) - timedelta(microseconds=1))
    assert _verify(store, csr, policy, clock).challenge == nonce


def test_challenge_never_issued_is_refused(
    store: Store, device: LineDevice, policy: VerificationPolicy, clock: ManualClock
) -> None:
    csr = attested_csr(device.client(), secrets.token_bytes(32))
    with pytest.raises(e.ChallengeUnknownError):
        _verify(store, csr, policy, clock)


def test_challenge_issued_for_another_device_is_refused(
    store: Store, device: LineDevice, policy: VerificationPolicy, clock: ManualClock
) -> None:
    nonce = new_challenge(store, clock, device_id="SOMEONE-ELSE")
    with pytest.raises(e.ChallengeNotBoundError):
        _verify(store, attested_csr(device.client(), nonce), policy, clock)
    bound = new_challenge(store, clock, device_id=device.serial)
    assert _verify(store, attested_csr(device.client(), bound), policy, clock)


# --- the manufacturer and the manifest ------------------------------------------------------------


def test_attestation_from_an_unknown_manufacturer_is_refused(
    store: Store, policy: VerificationPolicy, clock: ManualClock
) -> None:
    rogue = SoftwareLine(clock=clock, organization="Rogue Fab")
    made = rogue.make_device()
    _on_manifest(store, made)  # even listed, its chain does not reach a configured root
    nonce = new_challenge(store, clock)
    with pytest.raises(e.UnknownManufacturerError):
        _verify(store, attested_csr(made.client(), nonce), policy, clock)


def test_second_configured_manufacturer_is_accepted(
    store: Store, line: SoftwareLine, clock: ManualClock
) -> None:
    other = SoftwareLine(clock=clock, organization="Second Fab")
    made = other.make_device()
    _on_manifest(store, made)
    both = VerificationPolicy(manufacturer_roots=(line.root, other.root))
    assert _verify(store, attested_csr(made.client(), new_challenge(store, clock)), both, clock)


def test_quarantined_serial_is_refused(
    store: Store, line: SoftwareLine, policy: VerificationPolicy, clock: ManualClock
) -> None:
    made = line.make_device()
    _on_manifest(store, made, state="quarantined")
    with pytest.raises(e.QuarantinedDeviceError):
        _verify(store, attested_csr(made.client(), new_challenge(store, clock)), policy, clock)


def test_device_not_on_the_manifest_is_refused(
    store: Store, line: SoftwareLine, policy: VerificationPolicy, clock: ManualClock
) -> None:
    made = line.make_device()
    with pytest.raises(e.NotOnManifestError):
        _verify(store, attested_csr(made.client(), new_challenge(store, clock)), policy, clock)


def test_idevid_other_than_the_manifest_one_is_refused(
    store: Store, line: SoftwareLine, policy: VerificationPolicy, clock: ManualClock
) -> None:
    """A second chip with a genuine serial and a manufacturer-signed IDevID the line never
    recorded (a die diverted before the manifest): refused before it ever enrols."""
    genuine = line.make_device()
    _on_manifest(store, genuine)
    twin = line.make_device(ic_serial=genuine.chip_serial[-4:])
    assert twin.serial == genuine.serial
    with pytest.raises(e.IdevidMismatchError):
        _verify(store, attested_csr(twin.client(), new_challenge(store, clock)), policy, clock)


def test_cloned_idevid_is_refused_once_the_genuine_device_enrolled(
    store: Store, line: SoftwareLine, policy: VerificationPolicy, clock: ManualClock
) -> None:
    genuine = line.make_device()
    _on_manifest(store, genuine)
    first = _verify(
        store, attested_csr(genuine.client(), new_challenge(store, clock)), policy, clock
    )
    with store.transaction() as tx:
        tx.devices.add(first.device_id, DeviceStatus.ENROLLED, clock.now(), provisioner="x")
        tx.devices.bind_idevid(
            first.device_id,
            idevid_serial=first.device_id,
            idevid_key_sha256=first.idevid_key_sha256,
            now=clock.now(),
        )
    clone = line.make_device(ic_serial=genuine.chip_serial[-4:])
    with pytest.raises(e.CloneSuspectedError):
        _verify(store, attested_csr(clone.client(), new_challenge(store, clock)), policy, clock)
    # The genuine device still re-attests (re-key) with its own IDevID.
    assert _verify(
        store, attested_csr(genuine.client(), new_challenge(store, clock)), policy, clock
    )


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (DeviceStatus.REVOKED, e.DeviceRevokedError),
        (DeviceStatus.TRANSFERRED, e.DeviceTransferredError),
    ],
)
def test_revoked_or_transferred_device_is_refused(
    store: Store,
    device: LineDevice,
    policy: VerificationPolicy,
    clock: ManualClock,
    status: DeviceStatus,
    error: type[e.AttestationError],
) -> None:
    with store.transaction() as tx:
        tx.devices.add(device.serial, status, clock.now(), provisioner="attestation")
    with pytest.raises(error) as caught:
        _verify(store, attested_csr(device.client(), new_challenge(store, clock)), policy, clock)
    assert caught.value.reason == error.reason


# --- the key's properties ---------------------------------------------------------------------


def test_key_with_the_wrong_usage_is_refused(
    store: Store, device: LineDevice, policy: VerificationPolicy, clock: ManualClock
) -> None:
    nonce = new_challenge(store, clock)
    usage = KeyUsage.SIGN | KeyUsage.KEY_AGREEMENT
    with pytest.raises(e.KeyUsageError):
        _verify(store, attested_csr(device.client(), nonce, usage=usage), policy, clock)


class _SoftwareDevice:
    """A device whose attestation key is in software: it can say anything about its keys."""

    def __init__(self, line: SoftwareLine, store: Store) -> None:
        self.attestation_key = ec.generate_private_key(ec.SECP256R1())
        self.chip_serial = secrets.token_bytes(4)
        self.serial = "SW" + self.chip_serial.hex().upper()
        self.idevid = line.certify(self.attestation_key.public_key(), self.serial, self.chip_serial)
        with store.transaction() as tx:
            tx.manifest.add(
                ManifestRecord(
                    unit="sw-" + self.serial,
                    serial=self.serial,
                    state="secured",
                    idevid_fingerprint=certificate_fingerprint(self.idevid),
                    attestation_public_key=self.attestation_key.public_key().public_bytes(
                        DER, serialization.PublicFormat.SubjectPublicKeyInfo
                    ),
                ),
                self.idevid.not_valid_before_utc,
            )
        self.line = line

    def csr(
        self,
        nonce: bytes,
        *,
        signing_key: ec.EllipticCurvePrivateKey | None = None,
        **props: object,
    ) -> x509.CertificateSigningRequest:
        key = ec.generate_private_key(ec.SECP256R1())
        statement = forge_key_attestation(
            subject_key=key.public_key(),
            issuer=self.idevid,
            issuer_key=signing_key or self.attestation_key,
            props=software_key_props(
                props.pop("chip_serial", self.chip_serial),
                nonce,
                **props,  # type: ignore[arg-type]
            ),
            not_before=self.idevid.not_valid_before_utc,
        )
        bundle = AttestationBundle(
            statements=(
                AttestationStatement(
                    type=FLEETID_SE_KEY_ATTESTATION_OID, statement=statement.public_bytes(DER)
                ),
            ),
            certificates=(self.idevid, self.line.line_ca, self.line.root),
        )
        return software_csr(SoftwareSigner(key), bundle)


def test_forged_evidence_baseline_is_accepted(
    store: Store, line: SoftwareLine, policy: VerificationPolicy, clock: ManualClock
) -> None:
    """The forging helper itself makes acceptable evidence; each twin below changes one thing."""
    sw = _SoftwareDevice(line, store)
    assert _verify(store, sw.csr(new_challenge(store, clock)), policy, clock).device_id == sw.serial


def test_imported_key_is_refused(
    store: Store, line: SoftwareLine, policy: VerificationPolicy, clock: ManualClock
) -> None:
    sw = _SoftwareDevice(line, store)
    csr = sw.csr(new_challenge(store, clock), origin=KeyOrigin.IMPORTED)
    with pytest.raises(e.KeyNotGeneratedOnCardError):
        _verify(store, csr, policy, clock)


def test_exportable_key_is_refused(
    store: Store, line: SoftwareLine, policy: VerificationPolicy, clock: ManualClock
) -> None:
    sw = _SoftwareDevice(line, store)
    with pytest.raises(e.KeyExportableError):
        _verify(store, sw.csr(new_challenge(store, clock), exportable=True), policy, clock)


def test_chip_serial_other_than_the_idevid_one_is_refused(
    store: Store, line: SoftwareLine, policy: VerificationPolicy, clock: ManualClock
) -> None:
    sw = _SoftwareDevice(line, store)
    csr = sw.csr(new_challenge(store, clock), chip_serial=b"\x00\x00\x00\x01")
    with pytest.raises(e.ChipSerialMismatchError):
        _verify(store, csr, policy, clock)


def test_attestation_not_signed_by_the_idevid_key_is_refused(
    store: Store, line: SoftwareLine, policy: VerificationPolicy, clock: ManualClock
) -> None:
    sw = _SoftwareDevice(line, store)
    csr = sw.csr(new_challenge(store, clock), signing_key=ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(e.AttestationSignatureError):
        _verify(store, csr, policy, clock)


# --- the bundle itself ------------------------------------------------------------------------


def test_unsupported_statement_format_is_refused(
    store: Store, policy: VerificationPolicy, clock: ManualClock
) -> None:
    bundle = AttestationBundle(
        statements=(AttestationStatement(type="1.3.6.1.4.1.32473.99", statement=b"\x04\x01\x00"),)
    )
    csr = software_csr(SoftwareSigner(ec.generate_private_key(ec.SECP256R1())), bundle)
    with pytest.raises(e.EvidenceFormatUnsupportedError):
        _verify(store, csr, policy, clock)


def test_statement_that_is_not_a_certificate_is_malformed(
    store: Store, policy: VerificationPolicy, clock: ManualClock
) -> None:
    bundle = AttestationBundle(
        statements=(
            AttestationStatement(type=FLEETID_SE_KEY_ATTESTATION_OID, statement=b"\x04\x01\x00"),
        )
    )
    csr = software_csr(SoftwareSigner(ec.generate_private_key(ec.SECP256R1())), bundle)
    with pytest.raises(e.EvidenceMalformedError):
        _verify(store, csr, policy, clock)


def test_bundle_without_the_idevid_is_refused(
    store: Store, device: LineDevice, policy: VerificationPolicy, clock: ManualClock
) -> None:
    signer, bundle = card_evidence(device.client(), new_challenge(store, clock))
    stripped = AttestationBundle(statements=bundle.statements, certificates=bundle.certificates[1:])
    with pytest.raises(e.AttestationSignatureError):
        _verify(store, software_csr(signer, stripped), policy, clock)


def test_bundle_without_the_line_ca_does_not_reach_the_root(
    store: Store, device: LineDevice, policy: VerificationPolicy, clock: ManualClock
) -> None:
    signer, bundle = card_evidence(device.client(), new_challenge(store, clock))
    stripped = AttestationBundle(statements=bundle.statements, certificates=bundle.certificates[:1])
    with pytest.raises(e.UnknownManufacturerError):
        _verify(store, software_csr(signer, stripped), policy, clock)
