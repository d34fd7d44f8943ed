"""A vehicle whose canonical, EC and AT keys live in the emulated secure element, on both curve
families (NIST P-256 and brainpoolP256r1)."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from tests.v2x_fixtures import FAMILY_NAMES, new_pki

from fleetid.crypto.ecies import ecies_unwrap, ecies_wrap
from fleetid.crypto.v2xkeys import CURVES
from fleetid.device.v2x import CamReceiver, ItsStation, SecureElementV2xKeys
from fleetid.errors import PolicyError, VerificationError
from fleetid.formats.attestation import KeyUsage
from fleetid.se.client import SecureElementClient, SecureElementSigner
from fleetid.se.state import ATTESTATION_HANDLE
from fleetid.sim.test_card import DemoManufacturer, manufacture_test_card


def se_client() -> SecureElementClient:
    client = SecureElementClient(manufacture_test_card().card)
    client.select_identity()
    return client


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_vehicle_with_keys_in_the_se(family: str) -> None:
    pki = new_pki(family)
    curve = CURVES[pki.hierarchy.family.end_entity]
    client = se_client()
    canonical = SecureElementSigner(client, client.generate_key(curve, KeyUsage.SIGN).handle)
    pki.ea.register_canonical_key(b"VIN-SE-1", canonical.public_key())
    station = ItsStation(
        its_id=b"VIN-SE-1",
        canonical_key=canonical,
        keys=SecureElementV2xKeys(client),
        family=pki.hierarchy.family,
        trust=pki.hierarchy.trust_store(),
        clock=pki.clock,
        at_encryption_key=True,
    )
    station.enrol(pki.ea.handle_enrolment)
    station.request_tickets(2, pki.aa.handle_authorization)
    slots = client.list_keys()
    assert len(slots) >= 1 + 1 + 2 * 2  # canonical, EC, 2 AT signing + 2 AT ECIES
    assert {c.oid for handle, c, _ in slots if handle != ATTESTATION_HANDLE} == {
        "1.2.840.10045.3.1.7" if family == "nist" else "1.3.36.3.3.2.8.1.1.7"
    }
    cam = CamReceiver(pki.hierarchy.trust_store(), pki.clock).verify(station.sign_cam(b"se"))
    assert cam.payload == b"se"


@pytest.mark.parametrize("curve", ["nistP256", "brainpoolP256r1"])  # 1609.2 ECIES curves
def test_se_ecies_key_unwraps_by_reference(curve: str) -> None:
    client = se_client()
    key, public = SecureElementV2xKeys(client).encryption_key(curve)
    assert public.curve.name == CURVES[curve].name
    p1 = hashlib.sha256(b"recipient certificate").digest()
    wrapped = ecies_wrap(bytes(range(16)), public, p1)
    assert ecies_unwrap(wrapped, key, p1) == bytes(range(16))
    with pytest.raises(VerificationError):
        ecies_unwrap(wrapped, key, hashlib.sha256(b"another certificate").digest())


@pytest.mark.parametrize("curve", ["secp521r1", "ed25519", ""])
def test_se_refuses_curves_1609_does_not_use(curve: str) -> None:
    keys = SecureElementV2xKeys(se_client())
    with pytest.raises(PolicyError, match="no"):
        keys.signing_key(curve)
    with pytest.raises(PolicyError):
        keys.encryption_key(curve)


# ---------------------------------------------------------- attestation gates the canonical key


def attested_card(usage: KeyUsage = KeyUsage.SIGN) -> tuple[SecureElementClient, Any, int]:
    made = manufacture_test_card()
    client = SecureElementClient(made.card)
    client.select_identity()
    client.open_secure_channel(made.keys, 0x33, key_version=made.key_version)
    handle = client.generate_key(ec.SECP256R1(), usage).handle
    return client, made.manufacturer, handle


def test_attested_canonical_key_enrols() -> None:
    pki = new_pki("nist")
    client, manufacturer, handle = attested_card()
    challenge = os.urandom(32)
    attestation = client.attest(handle, challenge)
    key = pki.ea.register_attested_canonical_key(
        b"VIN-ATT-1",
        attestation,
        client.attestation_chain(),
        trusted_roots=[manufacturer.root_certificate],
        challenge=challenge,
    )
    canonical = SecureElementSigner(client, handle)
    assert key.public_numbers() == canonical.public_key().public_numbers()
    station = ItsStation(
        its_id=b"VIN-ATT-1",
        canonical_key=canonical,
        keys=SecureElementV2xKeys(client),
        family=pki.hierarchy.family,
        trust=pki.hierarchy.trust_store(),
        clock=pki.clock,
    )
    station.enrol(pki.ea.handle_enrolment)


def test_attestation_refusals() -> None:
    pki = new_pki("nist")
    client, manufacturer, handle = attested_card()
    challenge = os.urandom(32)
    attestation = client.attest(handle, challenge)
    chain = client.attestation_chain()
    register = pki.ea.register_attested_canonical_key
    with pytest.raises(VerificationError, match="another challenge"):
        register(
            b"V1",
            attestation,
            chain,
            trusted_roots=[manufacturer.root_certificate],
            challenge=os.urandom(32),
        )
    stranger = DemoManufacturer.create()
    with pytest.raises(VerificationError, match="trusted root"):
        register(
            b"V2",
            attestation,
            chain,
            trusted_roots=[stranger.root_certificate],
            challenge=challenge,
        )
    with pytest.raises(VerificationError, match="trusted root"):
        register(
            b"V3",
            attestation,
            chain[1:],
            trusted_roots=[manufacturer.root_certificate],
            challenge=challenge,
        )
    agreement_client, agreement_maker, agreement_handle = attested_card(KeyUsage.KEY_AGREEMENT)
    agreement = agreement_client.attest(agreement_handle, challenge)
    with pytest.raises(VerificationError, match="cannot sign"):
        register(
            b"V4",
            agreement,
            agreement_client.attestation_chain(),
            trusted_roots=[agreement_maker.root_certificate],
            challenge=challenge,
        )
    station = pki.station(b"V1", register=False)
    with pytest.raises(PolicyError, match="unknownits"):
        station.enrol(pki.ea.handle_enrolment)  # nothing was registered by the refusals
