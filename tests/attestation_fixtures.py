"""Fixtures for attestation-gated enrolment tests: a migrated store on SQLite and PostgreSQL
(over ``tests.db_fixtures``), and helpers that build attested CSRs from real (emulated) cards or
forge evidence no genuine card would emit.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi import FastAPI
from sqlalchemy import Engine

from fleetid.api import create_app
from fleetid.authority.fleet_ca import FleetCa
from fleetid.authority.lifecycle import LifecycleService, roll_issuing_ca
from fleetid.authority.provisioners.attestation import (
    import_manifest,
    trust_manufacturer,
)
from fleetid.clock import ManualClock
from fleetid.config import Settings
from fleetid.crypto.signer import Signer
from fleetid.device.transport import HttpTransport
from fleetid.formats.attestation import (
    KEY_PROPERTIES_OID,
    KeyOrigin,
    KeyProperties,
    KeyUsage,
    encode_key_properties,
)
from fleetid.formats.csr_attestation import (
    FLEETID_SE_KEY_ATTESTATION_OID,
    AttestationBundle,
    AttestationStatement,
    build_attested_csr,
)
from fleetid.se.client import SecureElementClient, SecureElementSigner
from fleetid.se.state import Curve
from fleetid.sim.software_line import LineDevice
from fleetid.store.repositories import ChallengeRecord, Store

__all__ = [
    "Authority",
    "attested_csr",
    "card_evidence",
    "forge_key_attestation",
    "make_authority",
    "new_challenge",
    "store_fixture",
]


@pytest.fixture(name="store")
def store_fixture(engine: Engine) -> Iterator[Store]:
    """A migrated authority store on the parametrised backend (``tests.db_fixtures``)."""
    s = Store(engine)
    yield s


def new_challenge(
    store: Store,
    clock: ManualClock,
    *,
    ttl: timedelta = timedelta(minutes=5),
    device_id: str | None = None,
) -> bytes:
    nonce = secrets.token_bytes(32)
    now = clock.now()
    with store.transaction() as tx:
        tx.challenges.add(
            ChallengeRecord(nonce=nonce, device_id=device_id, created_at=now, expires_at=now + ttl)
        )
    return nonce


def _subject(serial: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"device {serial}")])


def card_evidence(
    client: SecureElementClient,
    nonce: bytes,
    *,
    usage: KeyUsage = KeyUsage.SIGN,
    curve: Curve = Curve.P256,
) -> tuple[SecureElementSigner, AttestationBundle]:
    """A new key on the card and its attestation bound to ``nonce``, as a bundle."""
    info = client.generate_key(curve, usage)
    attestation = client.attest(info.handle, nonce)
    bundle = AttestationBundle(
        statements=(
            AttestationStatement(
                type=FLEETID_SE_KEY_ATTESTATION_OID,
                statement=attestation.public_bytes(serialization.Encoding.DER),
            ),
        ),
        certificates=tuple(client.attestation_chain()),
    )
    return SecureElementSigner(client, info.handle), bundle


def attested_csr(
    client: SecureElementClient, nonce: bytes, serial: str = "x", **kwargs: object
) -> x509.CertificateSigningRequest:
    signer, bundle = card_evidence(client, nonce, **kwargs)  # type: ignore[arg-type]
    return build_attested_csr(subject=_subject(serial), signer=signer, bundle=bundle)


def forge_key_attestation(
    *,
    subject_key: ec.EllipticCurvePublicKey,
    issuer: x509.Certificate,
    issuer_key: ec.EllipticCurvePrivateKey,
    props: KeyProperties,
    not_before: datetime,
) -> x509.Certificate:
    """A key-attestation certificate made in software (for evidence no genuine card emits)."""
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "forged")]))
        .issuer_name(issuer.subject)
        .public_key(subject_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + timedelta(days=3650))
        .add_extension(
            x509.UnrecognizedExtension(
                x509.ObjectIdentifier(KEY_PROPERTIES_OID), encode_key_properties(props)
            ),
            critical=False,
        )
        .sign(issuer_key, hashes.SHA256())
    )


def software_csr(
    signer: Signer, bundle: AttestationBundle, serial: str = "x"
) -> x509.CertificateSigningRequest:
    return build_attested_csr(subject=_subject(serial), signer=signer, bundle=bundle)


def software_key_props(chip_serial: bytes, nonce: bytes, **changes: object) -> KeyProperties:
    values: dict[str, object] = {
        "chip_serial": chip_serial,
        "key_handle": 1,
        "curve_oid": "1.2.840.10045.3.1.7",
        "usage": KeyUsage.SIGN,
        "challenge": nonce,
        "origin": KeyOrigin.GENERATED_ON_CARD,
        "exportable": False,
    }
    values.update(changes)
    return KeyProperties(**values)  # type: ignore[arg-type]


@dataclass
class Authority:
    """A fleet authority with attestation-gated enrolment, reachable in process."""

    ca: FleetCa
    service: LifecycleService
    app: FastAPI
    transport: HttpTransport

    def import_devices(self, *devices: LineDevice) -> None:
        import_manifest(self.ca.store, [d.manifest_record() for d in devices], self.ca.clock.now())

    def roll_issuing(self) -> None:
        self.service.replace_ca(roll_issuing_ca(self.service.ca))

    def close(self) -> None:
        self.transport.close()
        self.ca.close()


def make_authority(
    data_dir: Path,
    db_url: str,
    clock: ManualClock,
    manufacturers: Sequence[x509.Certificate],
    *,
    name: str = "Fleet A",
    base_url: str = "http://fleet-a.test",
) -> Authority:
    settings = Settings.load(
        data_dir, environ={"FLEETID_DATABASE_URL": db_url, "FLEETID_PUBLIC_URL": base_url}
    )
    ca = FleetCa.init(settings, clock=clock, name=name)
    for root in manufacturers:
        trust_manufacturer(data_dir, root)
    app = create_app(settings, clock=clock, ca=ca)
    service = app.state.enrolment
    assert isinstance(service, LifecycleService)
    assert service.attestation is not None
    return Authority(
        ca=ca, service=service, app=app, transport=HttpTransport.in_process(app, base_url)
    )
