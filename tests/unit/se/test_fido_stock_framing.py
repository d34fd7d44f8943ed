"""python-fido2's own PC/SC framing, in process: ``CtapPcscDevice`` over a connection object that
hands its APDUs straight to the card. Short APDUs chained with CLA 90 (250-byte pieces), Le 00,
61xx and GET RESPONSE are the library's; the same device also tries extended APDUs, and its
``Ctap1`` speaks the U2F raw messages."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from fido2.ctap1 import ApduError
from fido2.ctap2 import Ctap2
from fido2.webauthn import AttestationObject
from tests.optional import PCSC_EXTRA, require_module

from fleetid.authority.attestation.fido import verify_attestation
from fleetid.se.card import SecureElement
from fleetid.sim.fido_card import TEST_FIDO_MODEL, manufacture_fido_card

fido2_pcsc = require_module("fido2.pcsc", install=PCSC_EXTRA)


class CardConnection:
    """The part of a pyscard connection ``CtapPcscDevice`` uses, logging what crosses."""

    def __init__(self, card: SecureElement) -> None:
        self.card = card
        self.sent: list[bytes] = []

    def connect(self) -> None:
        self.card.reset()

    def disconnect(self) -> None:
        pass

    def getATR(self) -> list[int]:
        return []

    def transmit(self, apdu: list[int], protocol: Any = None) -> tuple[list[int], int, int]:
        self.sent.append(bytes(apdu))
        response = self.card.transmit(bytes(apdu))
        return list(response[:-2]), response[-2], response[-1]


def test_chained_short_apdus_and_get_response() -> None:
    made = manufacture_fido_card()
    connection = CardConnection(made.card)
    device = fido2_pcsc.CtapPcscDevice(connection, "in process")
    ctap = Ctap2(device)
    assert bytes(ctap.info.aaguid) == TEST_FIDO_MODEL.aaguid.bytes
    user = {"id": b"u" * 64, "name": "n" * 64, "displayName": "d" * 64}
    exclude = [{"type": "public-key", "id": bytes([i]) * 61} for i in range(4)]
    made_credential = ctap.make_credential(
        bytes(32),
        {"id": "example.com"},
        user,
        [{"type": "public-key", "alg": -7}],
        exclude_list=exclude,
        options={"rk": True},
    )
    # The request was over 250 bytes (chained with CLA 90), the response with its x5c over 256
    # (fetched with GET RESPONSE after 61xx).
    assert any(a[0] == 0x90 and a[1] == 0x10 for a in connection.sent)
    assert any(a[:2] == b"\x00\xc0" for a in connection.sent)
    assert len(made_credential.att_stmt["x5c"]) == 2
    descriptor = {
        "type": "public-key",
        "id": made_credential.auth_data.credential_data.credential_id,
    }
    assert ctap.get_assertion("example.com", bytes(32), [descriptor]).user is None
    # python-fido2's extended mode: one extended APDU without Le, the answer expected whole.
    device.use_ext_apdu = True
    sent = len(connection.sent)
    made_again = ctap.make_credential(
        bytes(32),
        {"id": "example.com"},
        user,
        [{"type": "public-key", "alg": -7}],
        exclude_list=exclude,
    )
    assert len(made_again.att_stmt["x5c"]) == 2
    assert len(connection.sent) == sent + 1
    assert connection.sent[-1][:5] == b"\x80\x10\x80\x00\x00"
    # ... and a card that is not told (a case 3 short APDU) still answers by ISO rules: 61xx.
    response = made.card.transmit(b"\x80\x10\x00\x00\x01\x04")
    assert response[-2] == 0x61 and len(response) == 2


# --- CTAP1/U2F: python-fido2's Ctap1 over the same stock device -------------------------------


def _u2f() -> tuple[Any, Any, Any]:
    from fido2.ctap1 import Ctap1

    made = manufacture_fido_card()
    connection = CardConnection(made.card)
    return made, connection, Ctap1(fido2_pcsc.CtapPcscDevice(connection, "in process"))


def test_u2f_register_and_authenticate_verify_with_python_fido2() -> None:
    made, _, ctap1 = _u2f()
    challenge, application = bytes(range(32)), hashlib.sha256(b"example.com").digest()
    assert ctap1.get_version() == "U2F_V2"
    registration = ctap1.register(challenge, application)
    registration.verify(application, challenge)  # the library checks the attestation signature
    assert registration.certificate == made.model_key.chain[0].public_bytes(
        serialization.Encoding.DER
    )
    # As a WebAuthn client wraps it (fido-u2f, WebAuthn §8.6): fleetid's verifier takes it.
    attestation = AttestationObject.from_ctap1(application, registration)
    verified = verify_attestation(bytes(attestation), challenge)
    assert verified.fmt == "fido-u2f" and verified.credential_id == registration.key_handle
    first = ctap1.authenticate(challenge, application, registration.key_handle)
    first.verify(application, challenge, registration.public_key)
    second = ctap1.authenticate(challenge, application, registration.key_handle)
    assert second.counter > first.counter and first.user_presence & 1
    # The same key handle is a CTAP2 credential of the RP whose ID hashes to the application.
    assertion = Ctap2(fido2_pcsc.CtapPcscDevice(CardConnection(made.card), "again")).get_assertion(
        "example.com", bytes(32), [{"type": "public-key", "id": registration.key_handle}]
    )
    assert assertion.auth_data.counter > second.counter


def test_u2f_refusals() -> None:
    made, _, ctap1 = _u2f()
    application = hashlib.sha256(b"example.com").digest()
    registration = ctap1.register(bytes(32), application)
    other_application = hashlib.sha256(b"other.example").digest()
    cases = [
        # another application's key handle: not ours (6A80)
        (lambda: ctap1.authenticate(bytes(32), other_application, registration.key_handle), 0x6A80),
        # check-only of our handle: "user presence needed" (6985), as U2F §5.1 defines it
        (
            lambda: ctap1.authenticate(
                bytes(32), application, registration.key_handle, check_only=True
            ),
            0x6985,
        ),
        (lambda: ctap1.authenticate(bytes(32), application, b"\x01" * 61), 0x6A80),
    ]
    for call, sw in cases:
        with pytest.raises(ApduError) as caught:
            call()
        assert caught.value.code == sw
    made.applet.user_presence = lambda rp_id: False
    for call in (
        lambda: ctap1.register(bytes(32), application),
        lambda: ctap1.authenticate(bytes(32), application, registration.key_handle),
    ):
        with pytest.raises(ApduError) as caught:
            call()
        assert caught.value.code == 0x6985
    assert made.card.transmit(b"\x00\x01\x00\x00\x01\x00")[-2:] == b"\x67\x00"  # wrong length
