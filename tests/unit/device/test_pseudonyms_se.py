"""Butterfly batches with the vehicle's keys in the secure element: the caterpillar key is made
on the card, the cocoon and pseudonym keys are derived there (DERIVE PSEUDONYM KEY) and used by
handle; no private value crosses the APDU boundary."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.hashes import SHA256
from tests.butterfly_fixtures import new_batch_pki

from fleetid.crypto.v2xkeys import CURVES
from fleetid.device.pseudonyms import PseudonymRequester, SecureElementCaterpillar
from fleetid.errors import SecureElementError
from fleetid.formats.attestation import KeyUsage
from fleetid.se.client import SecureElementClient, SecureElementSigner
from fleetid.se.state import CardState
from fleetid.se.wire import DERIVE_EXPLICIT
from fleetid.sim.test_card import ManufacturedCard, manufacture_test_card


class _Recorder:
    """The card's transport, keeping every response."""

    def __init__(self, made: ManufacturedCard) -> None:
        self._card = made.card
        self.responses: list[bytes] = []

    def transmit(self, command: bytes) -> bytes:
        response = self._card.transmit(command)
        self.responses.append(response)
        return response


def _private_values(made: ManufacturedCard) -> list[bytes]:
    state = CardState.from_bytes(made.card.flash.read(made.card._silicon))
    return [s.private_value.to_bytes(s.curve.coordinate_size, "big") for s in state.keys.values()]


@pytest.mark.parametrize(("family", "implicit"), [("nist", False), ("brainpool", True)])
def test_a_week_of_pseudonyms_with_every_key_on_the_card(family: str, implicit: bool) -> None:
    batch = new_batch_pki(family, implicit=implicit, per_period=3)
    made = manufacture_test_card()
    recorder = _Recorder(made)
    client = SecureElementClient(recorder)
    client.select_identity()
    curve = CURVES[batch.pki.hierarchy.family.end_entity]
    station = batch.pki.enrolled(b"VIN-SE-BF")
    assert station.enrolment_credential is not None
    vehicle = PseudonymRequester(
        ec_signer=station.enrolment_signer(),
        ec_certificate=station.enrolment_credential.encoded,
        ra_certificate=batch.authorities.ra.certificate.encoded,
        ca_certificate=batch.authorities.ca.certificate,
        curve=curve,
        implicit=implicit,
        caterpillar=SecureElementCaterpillar(client, curve),
    )
    before = len(client.list_keys())
    pseudonyms = batch.week(vehicle)
    assert len(client.list_keys()) == before + 3  # cocoon keys deleted, pseudonym keys kept
    for pseudonym in pseudonyms:
        assert isinstance(pseudonym.key, SecureElementSigner)
        digest = hashlib.sha256(b"CAM").digest()
        signature = pseudonym.key.sign(b"CAM")
        certified = (  # an implicit key was checked against e·P_U + Q_CA on reconstruction
            pseudonym.key.public_key() if implicit else pseudonym.certificate.verification_key()
        )
        certified.verify(signature, digest, ec.ECDSA(Prehashed(SHA256())))
    secrets = _private_values(made)
    assert len(secrets) == before + 3
    for response in recorder.responses:
        for secret in secrets:
            assert secret not in response
            assert secret.hex().encode() not in response.lower()


def test_the_card_refuses_what_derives_no_key() -> None:
    client = SecureElementClient(manufacture_test_card().card)
    client.select_identity()
    caterpillar = SecureElementCaterpillar(client, ec.SECP256R1())
    handle = caterpillar.handle
    k = caterpillar.expansion_key
    with pytest.raises(SecureElementError):  # c is 32 bytes
        client.derive_pseudonym_key(handle, DERIVE_EXPLICIT, k, 0, 0, values=bytes(31))
    with pytest.raises(SecureElementError):  # mode 04 does not exist
        client.derive_pseudonym_key(handle, 0x04, k, 0, 0)
    with pytest.raises(SecureElementError):  # no key in that slot
        client.derive_pseudonym_key(0x7E, DERIVE_EXPLICIT, k, 0, 0, values=bytes(32))
    p384 = client.generate_key(ec.SECP384R1(), KeyUsage.SIGN).handle
    with pytest.raises(SecureElementError):  # butterfly keys are 256-bit
        client.derive_pseudonym_key(p384, DERIVE_EXPLICIT, k, 0, 0, values=bytes(32))
    n = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    with pytest.raises(SecureElementError):  # c outside [0, n-1]
        client.derive_pseudonym_key(handle, DERIVE_EXPLICIT, k, 0, 0, values=n.to_bytes(32, "big"))
