"""The line's injection of a FIDO model attestation key (STORE DATA FD01/FD02 over SCP03), and
the applet's flash: what the card takes, what it refuses, what survives a power loss."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.crypto.signer import SoftwareSigner
from fleetid.errors import SecureElementError
from fleetid.factory.manufacturer import FidoModel, ManufacturerNames, issue_fido_attestation
from fleetid.factory.personalisation import inject_fido_attestation, lock
from fleetid.se.card import SecureElement
from fleetid.se.client import SecureElementClient
from fleetid.se.scp03 import StaticKeys
from fleetid.se.state import CardLifeCycle, CardState, FidoCredential, FidoState
from fleetid.se.wire import FIDO_AID, FIDO_ATTESTATION_CHAIN_DGI, FIDO_ATTESTATION_KEY_DGI
from fleetid.sim.fido_card import FidoModelKey
from fleetid.sim.test_card import DemoManufacturer

KEYS = StaticKeys(b"\x11" * 16, b"\x22" * 16, b"\x33" * 16)
KVN = 0x30


@pytest.fixture(scope="module")
def model_key() -> FidoModelKey:
    return FidoModelKey.issue(DemoManufacturer.create())


def blank() -> tuple[SecureElement, SecureElementClient]:
    card = SecureElement.fabricate(keysets={KVN: KEYS})
    return card, SecureElementClient(card)


def state_of(card: SecureElement) -> CardState:
    return CardState.from_bytes(card.flash.read(card._silicon))


def test_injected_key_and_chain_reach_flash(model_key: FidoModelKey) -> None:
    card, client = blank()
    inject_fido_attestation(client, KEYS, KVN, attestation_key=model_key.key, chain=model_key.chain)
    fido = state_of(card).fido
    assert fido.attestation_key == model_key.key.private_numbers().private_value
    assert fido.aaguid == model_key.model.aaguid.bytes
    assert len(fido.attestation_chain) == 2


def test_second_injection_is_refused(model_key: FidoModelKey) -> None:
    card, client = blank()
    inject_fido_attestation(client, KEYS, KVN, attestation_key=model_key.key, chain=model_key.chain)
    other = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(SecureElementError) as caught:
        inject_fido_attestation(client, KEYS, KVN, attestation_key=other, chain=model_key.chain)
    assert caught.value.sw == 0x6985
    assert state_of(card).fido.attestation_key == model_key.key.private_numbers().private_value


def test_injection_needs_c_decryption_and_a_card_not_yet_secured(
    model_key: FidoModelKey,
) -> None:
    card, client = blank()
    client.select(FIDO_AID)
    client.open_secure_channel(KEYS, 0x01, key_version=KVN)  # C-MAC only: the key in clear
    scalar = model_key.key.private_numbers().private_value.to_bytes(32, "big")
    with pytest.raises(SecureElementError) as caught:
        client.store_data([(FIDO_ATTESTATION_KEY_DGI, scalar)])
    assert caught.value.sw == 0x6982
    lock(client, KEYS, KVN)
    with pytest.raises(SecureElementError) as caught:
        inject_fido_attestation(
            client, KEYS, KVN, attestation_key=model_key.key, chain=model_key.chain
        )
    assert caught.value.sw == 0x6985
    assert card.life_cycle is CardLifeCycle.SECURED
    assert state_of(card).fido.attestation_key is None


def _certificate_without_aaguid(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "no AAGUID")])
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now.replace(year=now.year + 1))
        .sign(key, hashes.SHA256())
    )


def test_a_chain_that_is_not_the_keys_or_names_no_model_is_refused(
    model_key: FidoModelKey,
) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    cases = [
        (other, list(model_key.chain)),  # the certificate is of another key
        (other, [_certificate_without_aaguid(other)]),  # no id-fido-gen-ce-aaguid
    ]
    for key, chain in cases:
        card, client = blank()
        with pytest.raises(SecureElementError) as caught:
            inject_fido_attestation(client, KEYS, KVN, attestation_key=key, chain=chain)
        assert caught.value.sw == 0x6A80
        assert state_of(card).fido.attestation_key is None
    card, client = blank()
    client.select(FIDO_AID)
    client.open_secure_channel(KEYS, 0x33, key_version=KVN)
    with pytest.raises(SecureElementError) as caught:  # the key without its chain
        client.store_data([(FIDO_ATTESTATION_KEY_DGI, bytes(31) + b"\x01")])
    assert caught.value.sw == 0x6A88
    with pytest.raises(SecureElementError) as caught:  # a chain that is not DER
        client.store_data(
            [(FIDO_ATTESTATION_KEY_DGI, bytes(31) + b"\x01"), (FIDO_ATTESTATION_CHAIN_DGI, b"\x30")]
        )
    assert caught.value.sw == 0x6A80


def test_fido_state_round_trips_and_old_flash_without_it_loads() -> None:
    card = SecureElement.fabricate()
    state = state_of(card)
    state.fido = FidoState(
        wrap_key=bytes(range(32)),
        sign_count=7,
        attestation_key=12345,
        attestation_chain=[b"\x30\x00"],
        aaguid=uuid.UUID(int=5).bytes,
        pin_hash=bytes(16),
        pin_retries=3,
        credentials=[
            FidoCredential(
                rp_id="example.com",
                user_id=b"u",
                user_name=None,
                display_name="D",
                credential_id=b"\x01" * 61,
                private_value=99,
                created=2,
            )
        ],
    )
    assert CardState.from_bytes(state.to_bytes()).fido == state.fido
    assert not state.fido.pristine()
    assert FidoState().pristine() and FidoState(sign_count=1).pristine() is False
    doc = json.loads(state.to_bytes())
    del doc["fido"]  # a card written before the FIDO applet existed
    assert CardState.from_bytes(json.dumps(doc).encode()).fido == FidoState()


def test_issued_certificate_round_trip_names_the_model() -> None:
    manufacturer = DemoManufacturer.create()
    model = FidoModel(aaguid=uuid.uuid4(), name="model X")
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = issue_fido_attestation(
        line_ca=manufacturer.ca_certificate,
        line_ca_signer=SoftwareSigner(manufacturer.ca_key),
        public_key=key.public_key(),
        model=model,
        names=ManufacturerNames(organization="fleetid TEST"),
        now=manufacturer.clock.now(),
    )
    card, client = blank()
    inject_fido_attestation(
        client, KEYS, KVN, attestation_key=key, chain=[leaf, manufacturer.ca_certificate]
    )
    assert state_of(card).fido.aaguid == model.aaguid.bytes
