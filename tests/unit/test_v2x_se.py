"""A vehicle whose canonical, EC and AT keys live in the emulated secure element (NIST P-256)."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from tests.v2x_fixtures import new_pki

from fleetid.crypto.ecies import ecies_unwrap, ecies_wrap
from fleetid.device.v2x import CamReceiver, ItsStation, SecureElementV2xKeys
from fleetid.errors import PolicyError, VerificationError
from fleetid.formats.attestation import KeyUsage
from fleetid.se.card import DemoManufacturer, manufacture_test_card
from fleetid.se.client import SecureElementClient, SecureElementSigner


def se_client() -> SecureElementClient:
    client = SecureElementClient(manufacture_test_card().card)
    client.select_identity()
    return client


def test_vehicle_with_keys_in_the_se() -> None:
    pki = new_pki("nist")
    client = se_client()
    canonical = SecureElementSigner(
        client, client.generate_key(ec.SECP256R1(), KeyUsage.SIGN).handle
    )
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
    handles_before = {h for h, _, _ in client.list_keys()}
    assert len(handles_before) >= 1 + 1 + 2 * 2  # canonical, EC, 2 AT signing + 2 AT ECIES
    cam = CamReceiver(pki.hierarchy.trust_store(), pki.clock).verify(station.sign_cam(b"se"))
    assert cam.payload == b"se"


def test_se_ecies_key_unwraps_by_reference() -> None:
    client = se_client()
    key, public = SecureElementV2xKeys(client).encryption_key("nistP256")
    p1 = hashlib.sha256(b"recipient certificate").digest()
    wrapped = ecies_wrap(bytes(range(16)), public, p1)
    assert ecies_unwrap(wrapped, key, p1) == bytes(range(16))


@pytest.mark.parametrize("curve", ["brainpoolP256r1", "nistP384"])
def test_se_refuses_curves_it_does_not_have(curve: str) -> None:
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
