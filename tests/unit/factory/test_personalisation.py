"""The one personalisation sequence: run on an emulated card, step by step and as a whole."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.clock import ManualClock
from fleetid.errors import (
    ConditionsNotSatisfiedError,
    ReferencedDataNotFoundError,
    SecureElementError,
    VerificationError,
)
from fleetid.factory import personalisation
from fleetid.se.card import SecureElement
from fleetid.se.client import SecureElementClient
from fleetid.se.scp03 import StaticKeys
from fleetid.se.wire import (
    ATTESTATION_HANDLE,
    IDENTITY_AID,
    CardLifeCycle,
    Cplc,
    Curve,
    PersonalisationObject,
)
from fleetid.sim.test_card import DemoManufacturer

KVN = 0x30


def _card() -> tuple[SecureElement, StaticKeys]:
    keys = StaticKeys(os.urandom(16), os.urandom(16), os.urandom(16))
    return SecureElement.fabricate(ic_serial=bytes.fromhex("0A0B0C0D"), keysets={KVN: keys}), keys


@pytest.fixture(scope="module")
def manufacturer() -> DemoManufacturer:
    return DemoManufacturer.create(ManualClock())


def _certify(manufacturer: DemoManufacturer) -> personalisation.Certify:
    def certify(public_key: ec.EllipticCurvePublicKey, cplc: Cplc) -> Sequence[x509.Certificate]:
        leaf = manufacturer.certify_attestation_key(public_key, cplc.ic_serial)
        return [leaf, manufacturer.ca_certificate]

    return certify


def _personalise(
    card: SecureElement,
    keys: StaticKeys,
    manufacturer: DemoManufacturer,
    **options: Any,
) -> personalisation.Personalised:
    return personalisation.personalise(
        SecureElementClient(card),
        keys=keys,
        key_version=KVN,
        certify=_certify(manufacturer),
        **options,
    )


def test_personalise_makes_a_secured_card_with_its_chain_and_canonical_key(
    manufacturer: DemoManufacturer,
) -> None:
    card, keys = _card()
    made = _personalise(
        card,
        keys,
        manufacturer,
        canonical_curve=Curve.P256,
        trust_anchors=[manufacturer.root_certificate],
    )
    assert made.serial == personalisation.device_serial(made.cplc.kdd)
    assert made.cplc.ic_serial == bytes.fromhex("0A0B0C0D")
    client = SecureElementClient(card)
    client.select_isd()
    assert client.life_cycle() is CardLifeCycle.SECURED
    client.select_identity()
    assert client.attestation_chain() == list(made.chain)
    assert client.trust_anchors() == [manufacturer.root_certificate]
    assert made.chain[0].public_key() == made.attestation_key
    held = client.get_public_key(personalisation.CANONICAL_KEY_HANDLE).public_key
    assert held == made.canonical_key
    assert made.canonical_attestation is not None


def test_personalise_without_securing_leaves_the_card_op_ready(
    manufacturer: DemoManufacturer,
) -> None:
    card, keys = _card()
    made = _personalise(card, keys, manufacturer, secure=False)
    client = SecureElementClient(card)
    client.select_isd()
    assert client.life_cycle() is CardLifeCycle.OP_READY
    assert made.canonical_key is None and made.canonical_attestation is None


def test_a_secured_card_refuses_a_second_personalisation(manufacturer: DemoManufacturer) -> None:
    card, keys = _card()
    _personalise(card, keys, manufacturer)
    with pytest.raises(ConditionsNotSatisfiedError):
        _personalise(card, keys, manufacturer)


def test_personalise_with_other_keys_fails_before_touching_the_card(
    manufacturer: DemoManufacturer,
) -> None:
    card, _ = _card()
    wrong = StaticKeys(bytes(16), bytes(16), bytes(16))
    client = SecureElementClient(card)
    with pytest.raises((VerificationError, SecureElementError)):
        _personalise(card, wrong, manufacturer)
    client.select_isd()
    assert client.life_cycle() is CardLifeCycle.OP_READY
    client.select_identity()
    with pytest.raises(ReferencedDataNotFoundError):
        client.get_public_key(ATTESTATION_HANDLE)


def test_attest_refuses_a_canonical_key_the_card_does_not_hold(
    manufacturer: DemoManufacturer,
) -> None:
    card, keys = _card()
    client = SecureElementClient(card)
    made = _personalise(card, keys, manufacturer, canonical_curve=Curve.P256, secure=False)
    assert made.canonical_key is not None
    personalisation.open_channel(client, IDENTITY_AID, keys, KVN)
    assert personalisation.attest_canonical_key(client, made.serial, made.canonical_key)
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(VerificationError, match="another canonical key"):
        personalisation.attest_canonical_key(client, made.serial, other)


def test_generate_canonical_key_discards_an_unrecorded_one_only_when_asked() -> None:
    card, keys = _card()
    client = SecureElementClient(card)
    personalisation.open_channel(client, IDENTITY_AID, keys, KVN)
    first = personalisation.generate_canonical_key(client, Curve.P256)
    with pytest.raises(SecureElementError):
        personalisation.generate_canonical_key(client, Curve.P256)
    second = personalisation.generate_canonical_key(client, Curve.P256, discard_existing=True)
    assert second != first


def test_objects_carry_only_what_is_given() -> None:
    chain = personalisation.objects(chain=b"c")
    assert chain == [(PersonalisationObject.ATTESTATION_CHAIN[0], b"c")]
    full = personalisation.objects(chain=b"c", trust_anchors=b"t", firmware_key=b"f")
    assert [dgi for dgi, _ in full] == [
        PersonalisationObject.ATTESTATION_CHAIN[0],
        PersonalisationObject.TRUST_ANCHORS[0],
        PersonalisationObject.FIRMWARE_KEY[0],
    ]


def test_the_canonical_challenge_is_bound_to_the_serial() -> None:
    one = personalisation.canonical_challenge("A")
    assert len(one) == 32
    assert one == personalisation.canonical_challenge("A")
    assert one != personalisation.canonical_challenge("B")
