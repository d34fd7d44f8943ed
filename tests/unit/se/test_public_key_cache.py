"""The card's public-key and issuer caches: STORE DATA checks a chain against the public key
recorded when the key was generated (no rebuild from the scalar), a reloaded card computes it
again, and either way a chain for another key is refused; ATTEST parses its issuer once; the
SCP03 key set views go on tamper."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.errors import IncorrectDataError
from fleetid.formats.attestation import KeyUsage
from fleetid.se.applets import identity, manager
from fleetid.se.card import SecureElement, TamperEvent
from fleetid.se.client import SecureElementClient
from fleetid.se.state import ATTESTATION_HANDLE
from fleetid.sim.test_card import manufacture_test_card


def _no_rebuild(*_: object) -> ec.EllipticCurvePrivateKey:
    raise AssertionError("the private key object was rebuilt")


def test_store_data_uses_the_key_recorded_at_generation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(manager.ec, "derive_private_key", _no_rebuild)
    made = manufacture_test_card(secure=False)  # GENERATE, then STORE DATA of the chain
    state = made.card._state  # type: ignore[attr-defined]
    slot, _ = state.public_keys[ATTESTATION_HANDLE]
    assert slot is state.keys[ATTESTATION_HANDLE]
    assert state.attestation_chain[0] == made.attestation_certificate.public_bytes(
        serialization.Encoding.DER
    )


def _open(tmp_path: Path) -> tuple[SecureElement, SecureElementClient]:
    card = SecureElement.open(tmp_path / "silicon", tmp_path / "flash")
    return card, SecureElementClient(card)


def test_a_reloaded_card_computes_the_key_and_still_refuses_another(tmp_path: Path) -> None:
    made = manufacture_test_card(
        secure=False, silicon_path=tmp_path / "silicon", flash_path=tmp_path / "flash"
    )
    card, client = _open(tmp_path)
    assert not card._state.public_keys  # type: ignore[attr-defined]
    client.select_identity()
    client.open_secure_channel(made.keys, 0x33, key_version=made.key_version)
    manufacturer = made.manufacturer
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    foreign = manufacturer.certify_attestation_key(other, card.chip_serial)
    with pytest.raises(IncorrectDataError):
        client.install_attestation_chain([foreign, manufacturer.ca_certificate])
    again = manufacturer.certify_attestation_key(
        made.attestation_certificate.public_key(),  # type: ignore[arg-type]
        card.chip_serial,
    )
    client.install_attestation_chain([again, manufacturer.ca_certificate])
    assert ATTESTATION_HANDLE in card._state.public_keys  # type: ignore[attr-defined]


def test_public_keys_dropped_on_tamper() -> None:
    made = manufacture_test_card(secure=False)
    state = made.card._state  # type: ignore[attr-defined]
    assert state.public_keys
    made.card.tamper(TamperEvent.MESH)
    assert not state.public_keys


def test_attest_names_its_issuer_and_drops_it_on_tamper() -> None:
    made = manufacture_test_card()
    client = SecureElementClient(made.card)
    client.select_identity()
    client.open_secure_channel(made.keys, 0x33, key_version=made.key_version)
    client.generate_key(ec.SECP256R1(), KeyUsage.SIGN, handle=1)
    first = client.attest(1, b"one")
    second = client.attest(1, b"two")
    issuer = made.attestation_certificate
    ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    for cert in (first, second):
        assert cert.issuer == issuer.subject
        assert cert.not_valid_before_utc == issuer.not_valid_before_utc
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        assert aki.key_identifier == ski.digest
    applet = made.card._applet_for(identity.IDENTITY_AID)  # type: ignore[attr-defined]
    assert applet._issuer is not None
    made.card.tamper(TamperEvent.GLITCH)
    assert applet._issuer is None


def test_key_set_views_are_dropped_on_tamper() -> None:
    made = manufacture_test_card()
    client = SecureElementClient(made.card)
    client.select_isd()
    client.open_secure_channel(made.keys, 0x33, key_version=made.key_version)
    assert made.card._statics  # type: ignore[attr-defined]
    made.card.tamper(TamperEvent.VOLTAGE)
    assert not made.card._statics  # type: ignore[attr-defined]
