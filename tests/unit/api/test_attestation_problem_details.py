"""Every attestation refusal reaches the client over HTTP as an RFC 9457 problem document whose
``reason`` extension member is the refusal's documented code; on SQLite and PostgreSQL.

Each case drives the in-process ASGI app with the requests a device would send (a challenge from
``POST /enrol/challenge``, an attested CSR to ``simpleenroll``, or a proof-authenticated re-key to
``simplereenroll``) and breaks one rule. Genuine evidence comes from emulated cards; evidence no
genuine card emits is forged in software.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tests.attestation_fixtures import (
    Authority,
    attested_csr,
    card_evidence,
    forge_key_attestation,
    make_authority,
    software_csr,
    software_key_props,
)

from fleetid import errors
from fleetid import errors as e
from fleetid.api.errors import problem_response
from fleetid.clock import ManualClock
from fleetid.crypto.signer import SoftwareSigner
from fleetid.device.agent import DeviceAgent
from fleetid.device.truststore import TrustStore
from fleetid.factory.manufacturer import certificate_fingerprint
from fleetid.formats.attestation import KeyOrigin, KeyUsage
from fleetid.formats.csr_attestation import (
    FLEETID_SE_KEY_ATTESTATION_OID,
    ID_AA_ATTESTATION,
    AttestationBundle,
    AttestationStatement,
)
from fleetid.formats.proof import REENROLL_PATH, sign_proof
from fleetid.policy import CredentialType
from fleetid.se.client import SecureElementSigner
from fleetid.sim.software_line import LineDevice, SoftwareLine
from fleetid.store.repositories import ManifestRecord
from fleetid.store.schema import DeviceStatus

DER = serialization.Encoding.DER
BASE = "http://fleet-a.test"
ENROL = "/.well-known/est/simpleenroll"
REENROL = "/.well-known/est/simplereenroll"


class AsgiClient:
    """A synchronous face on httpx's in-process ASGI transport (no sockets)."""

    def __init__(self, app: Any) -> None:
        self._transport = httpx.ASGITransport(app=app)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            async with httpx.AsyncClient(transport=self._transport, base_url=BASE) as client:
                return await client.post(url, **kwargs)

        return asyncio.run(send())


@dataclass
class World:
    authority: Authority
    line: SoftwareLine
    clock: ManualClock
    http: AsgiClient

    def challenge(self, device_id: str | None = None) -> bytes:
        """A challenge for ``device_id`` over HTTP; with None, an unbound one straight into the
        store (the route issues only bound challenges, to devices it knows; the verifier still
        takes an unbound row, which these scenarios use for devices the manifest lacks)."""
        if device_id is None:
            provisioner = self.authority.service.attestation
            assert provisioner is not None
            with self.authority.ca.store.transaction() as tx:
                return provisioner.issue_challenge(tx, None).nonce
        response = self.http.post("/enrol/challenge", json={"device_id": device_id})
        assert response.status_code == 200, response.text
        text = response.json()["nonce"]
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

    def device(self, state: str | None = "secured") -> LineDevice:
        made = self.line.make_device()
        if state is not None:
            with self.authority.ca.store.transaction() as tx:
                tx.manifest.add(made.manifest_record(state), self.clock.now())
        return made

    def post(
        self, path: str, csr: x509.CertificateSigningRequest | bytes, **headers: str
    ) -> httpx.Response:
        der = csr if isinstance(csr, bytes) else csr.public_bytes(DER)
        return self.http.post(
            path,
            content=base64.encodebytes(der),
            headers={"Content-Type": "application/pkcs10", **headers},
        )


@pytest.fixture
def world(tmp_path: Path, db_url: str) -> Iterator[World]:
    clock = ManualClock()
    line = SoftwareLine(clock=clock)
    authority = make_authority(tmp_path / "a", db_url, clock, [line.root], base_url=BASE)
    yield World(authority=authority, line=line, clock=clock, http=AsgiClient(authority.app))
    authority.close()


class _SoftwareDevice:
    """A device whose attestation key is in software: it can claim anything about its keys."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.attestation_key = ec.generate_private_key(ec.SECP256R1())
        self.chip_serial = secrets.token_bytes(4)
        self.serial = "SW" + self.chip_serial.hex().upper()
        self.idevid = world.line.certify(
            self.attestation_key.public_key(), self.serial, self.chip_serial
        )
        record = ManifestRecord(
            unit="sw-" + self.serial,
            serial=self.serial,
            state="secured",
            idevid_fingerprint=certificate_fingerprint(self.idevid),
            attestation_public_key=self.attestation_key.public_key().public_bytes(
                DER, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        )
        with world.authority.ca.store.transaction() as tx:
            tx.manifest.add(record, world.clock.now())

    def csr(
        self, *, signing_key: ec.EllipticCurvePrivateKey | None = None, **props: Any
    ) -> x509.CertificateSigningRequest:
        key = ec.generate_private_key(ec.SECP256R1())
        chip_serial = props.pop("chip_serial", self.chip_serial)
        statement = forge_key_attestation(
            subject_key=key.public_key(),
            issuer=self.idevid,
            issuer_key=signing_key or self.attestation_key,
            props=software_key_props(chip_serial, self.world.challenge(), **props),
            not_before=self.idevid.not_valid_before_utc,
        )
        bundle = AttestationBundle(
            statements=(
                AttestationStatement(
                    type=FLEETID_SE_KEY_ATTESTATION_OID, statement=statement.public_bytes(DER)
                ),
            ),
            certificates=(self.idevid, self.world.line.line_ca, self.world.line.root),
        )
        return software_csr(SoftwareSigner(key), bundle)


def _software_key_bundle(statement_type: str, statement: bytes) -> x509.CertificateSigningRequest:
    bundle = AttestationBundle(
        statements=(AttestationStatement(type=statement_type, statement=statement),)
    )
    return software_csr(SoftwareSigner(ec.generate_private_key(ec.SECP256R1())), bundle)


def _enrolled_agent(w: World, device: LineDevice) -> DeviceAgent:
    cadence = w.authority.ca.settings.policy.profile(CredentialType.OPERATIONAL).cadence
    agent = DeviceAgent(
        se=device.client(),
        clock=w.clock,
        cadence=cadence,
        trust=TrustStore([w.authority.ca.root]),
    )
    agent.enrol(w.authority.transport)
    return agent


# --- one scenario per reason code: each returns the refused response ---------------------------


def _evidence_missing(w: World) -> httpx.Response:
    """A re-key to a software key with no evidence, under a valid proof."""
    device = w.device()
    agent = _enrolled_agent(w, device)
    assert agent.credential is not None
    nonce = w.challenge(device.serial)
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device.serial)]))
        .sign(key, hashes.SHA256())
        .public_bytes(DER)
    )
    proof = sign_proof(
        SecureElementSigner(agent.se, agent.credential.handle),
        serial=agent.credential.serial,
        nonce=nonce,
        path=REENROLL_PATH,
        body=csr,
    )
    return w.post(REENROL, csr, **{"Fleetid-Proof": proof.header()})


def _evidence_malformed(w: World) -> httpx.Response:
    return w.post(ENROL, _software_key_bundle(FLEETID_SE_KEY_ATTESTATION_OID, b"\x04\x01\x00"))


def _format_unsupported(w: World) -> httpx.Response:
    return w.post(ENROL, _software_key_bundle("1.3.6.1.4.1.32473.99", b"\x04\x01\x00"))


def _attestation_signature(w: World) -> httpx.Response:
    forged = _SoftwareDevice(w).csr(signing_key=ec.generate_private_key(ec.SECP256R1()))
    return w.post(ENROL, forged)


def _manufacturer_unknown(w: World) -> httpx.Response:
    rogue = SoftwareLine(clock=w.clock, organization="Rogue Fab").make_device()
    with w.authority.ca.store.transaction() as tx:
        tx.manifest.add(rogue.manifest_record(), w.clock.now())
    return w.post(ENROL, attested_csr(rogue.client(), w.challenge()))


def _chip_serial_mismatch(w: World) -> httpx.Response:
    return w.post(ENROL, _SoftwareDevice(w).csr(chip_serial=b"\x00\x00\x00\x01"))


def _key_mismatch(w: World) -> httpx.Response:
    _, bundle = card_evidence(w.device().client(), w.challenge())
    signer = SoftwareSigner(ec.generate_private_key(ec.SECP256R1()))
    return w.post(ENROL, software_csr(signer, bundle))


def _not_generated_on_card(w: World) -> httpx.Response:
    return w.post(ENROL, _SoftwareDevice(w).csr(origin=KeyOrigin.IMPORTED))


def _exportable(w: World) -> httpx.Response:
    return w.post(ENROL, _SoftwareDevice(w).csr(exportable=True))


def _key_usage(w: World) -> httpx.Response:
    usage = KeyUsage.SIGN | KeyUsage.KEY_AGREEMENT
    return w.post(ENROL, attested_csr(w.device().client(), w.challenge(), usage=usage))


def _not_on_manifest(w: World) -> httpx.Response:
    return w.post(ENROL, attested_csr(w.device(state=None).client(), w.challenge()))


def _quarantined(w: World) -> httpx.Response:
    return w.post(ENROL, attested_csr(w.device("quarantined").client(), w.challenge()))


def _idevid_mismatch(w: World) -> httpx.Response:
    genuine = w.device()
    twin = w.line.make_device(ic_serial=genuine.chip_serial[-4:])
    assert twin.serial == genuine.serial
    return w.post(ENROL, attested_csr(twin.client(), w.challenge()))


def _clone_suspected(w: World) -> httpx.Response:
    genuine = w.device()
    first = w.post(ENROL, attested_csr(genuine.client(), w.challenge()))
    assert first.status_code == 200, first.text
    clone = w.line.make_device(ic_serial=genuine.chip_serial[-4:])
    return w.post(ENROL, attested_csr(clone.client(), w.challenge()))


def _status(status: DeviceStatus) -> Callable[[World], httpx.Response]:
    def scenario(w: World) -> httpx.Response:
        device = w.device()
        with w.authority.ca.store.transaction() as tx:
            tx.devices.add(device.serial, status, w.clock.now(), provisioner="attestation")
        return w.post(ENROL, attested_csr(device.client(), w.challenge()))

    return scenario


def _challenge_unknown(w: World) -> httpx.Response:
    return w.post(ENROL, attested_csr(w.device().client(), secrets.token_bytes(32)))


def _challenge_expired(w: World) -> httpx.Response:
    csr = attested_csr(w.device().client(), w.challenge())
    w.clock.advance(w.authority.ca.settings.policy.challenge_ttl + timedelta(seconds=1))
    return w.post(ENROL, csr)


def _challenge_replayed(w: World) -> httpx.Response:
    device = w.device()
    nonce = w.challenge()
    first = w.post(ENROL, attested_csr(device.client(), nonce))
    assert first.status_code == 200, first.text
    return w.post(ENROL, attested_csr(device.client(), nonce))


def _challenge_not_bound(w: World) -> httpx.Response:
    someone_else = w.device().serial
    return w.post(ENROL, attested_csr(w.device().client(), w.challenge(someone_else)))


SCENARIOS: dict[type[e.AttestationError], Callable[[World], httpx.Response]] = {
    e.EvidenceMissingError: _evidence_missing,
    e.EvidenceMalformedError: _evidence_malformed,
    e.EvidenceFormatUnsupportedError: _format_unsupported,
    e.AttestationSignatureError: _attestation_signature,
    e.UnknownManufacturerError: _manufacturer_unknown,
    e.ChipSerialMismatchError: _chip_serial_mismatch,
    e.KeyMismatchError: _key_mismatch,
    e.KeyNotGeneratedOnCardError: _not_generated_on_card,
    e.KeyExportableError: _exportable,
    e.KeyUsageError: _key_usage,
    e.NotOnManifestError: _not_on_manifest,
    e.QuarantinedDeviceError: _quarantined,
    e.IdevidMismatchError: _idevid_mismatch,
    e.CloneSuspectedError: _clone_suspected,
    e.DeviceRevokedError: _status(DeviceStatus.REVOKED),
    e.DeviceTransferredError: _status(DeviceStatus.TRANSFERRED),
    e.ChallengeUnknownError: _challenge_unknown,
    e.ChallengeExpiredError: _challenge_expired,
    e.ChallengeReplayedError: _challenge_replayed,
    e.ChallengeNotBoundError: _challenge_not_bound,
}


def test_every_concrete_refusal_has_a_scenario() -> None:
    concrete = {cls for cls in e.reason_codes().values() if cls is not e.AttestationError}
    # FIDO registration's refusals reach HTTP through its own routes (tests/unit/api/test_fido.py).
    fido = {e.AttestationTypeRefusedError, e.AuthenticatorUnknownError, e.AuthenticatorStatusError}
    assert concrete - fido == set(SCENARIOS)


@pytest.mark.parametrize("error", list(SCENARIOS), ids=lambda cls: cls.reason)
def test_refusal_reason_over_http(world: World, error: type[e.AttestationError]) -> None:
    response = SCENARIOS[error](world)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"] == "urn:fleetid:problem:verification-failed"
    assert body["status"] == 400
    assert body["reason"] == error.reason, body


def test_refusal_without_a_reason_code_has_no_reason_member(world: World) -> None:
    """A token enrolment with a wrong credential: an error that carries no code."""
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
        .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    )
    response = world.http.post(
        ENROL,
        content=base64.encodebytes(csr.public_bytes(DER)),
        headers={"Content-Type": "application/pkcs10"},
        auth=("t-0000000000000000", "wrong"),
    )
    assert response.status_code == 401, response.text
    assert response.json()["type"] == "urn:fleetid:problem:unauthenticated"
    assert "reason" not in response.json()


def test_malformed_bundle_attribute_is_evidence_malformed(world: World) -> None:
    """An id-aa-attestation attribute whose value is a UTF8String, not an AttestationBundle."""
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")]))
        .add_attribute(x509.ObjectIdentifier(ID_AA_ATTESTATION), b"not a bundle")
        .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    )
    response = world.post(ENROL, csr)
    assert response.status_code == 400, response.text
    assert response.json()["reason"] == "evidence-malformed"


def test_extension_members_never_replace_the_standard_ones() -> None:
    response = problem_response(
        400, "x", "Title", "detail", extensions={"status": "999", "reason": "r"}
    )
    body = json.loads(bytes(response.body))
    assert body["status"] == 400
    assert body["reason"] == "r"


def test_error_tree_reason_is_a_class_attribute_not_instance_state() -> None:
    # The handler reads ``reason`` from any FleetIdError; plain families carry none.
    assert not hasattr(errors.AuthenticationError("x"), "reason")
    assert e.KeyUsageError("x").reason == "key-usage"
