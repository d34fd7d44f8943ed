"""python-fido2's stock PC/SC client against the FIDO applet, through pcscd and the vpcd reader.

``CtapPcscDevice`` (short APDUs chained with CLA 90, GET RESPONSE after 61xx) and, above it,
``Fido2Client`` register a credential with a PIN and authenticate with it; the packed attestation
verifies with python-fido2's own procedure and chain check and with fleetid's FIDO verifier, and
the assertion counter with fleetid's relying-party check. The stack comes from the fixture of
``test_pcsc`` (it starts pcscd when none runs).
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from tests.integration.test_pcsc import (  # noqa: F401 - pcsc_stack is a fixture
    Inserted,
    PcscStack,
    connected,
    pcsc_stack,
    wait_for_card,
)
from tests.optional import PCSC_EXTRA, require_module

from fleetid.authority.attestation.fido import verify_attestation
from fleetid.authority.fido_assertion import verify_assertion
from fleetid.errors import AssertionCounterError
from fleetid.sim.demo_fido_card import ctap_device
from fleetid.sim.fido_card import TEST_FIDO_MODEL, manufacture_fido_card

pytestmark = [pytest.mark.pcsc, pytest.mark.xdist_group("pcsc")]

PIN = "2468-pin"


def test_python_fido2_registers_and_authenticates_over_pcsc(
    pcsc_stack: PcscStack,  # noqa: F811 - the fixture imported above
) -> None:
    fido2_pcsc = require_module("fido2.pcsc", install=PCSC_EXTRA)
    from fido2.attestation import PackedAttestation, verify_x509_chain
    from fido2.client import DefaultClientDataCollector, Fido2Client, UserInteraction
    from fido2.ctap2 import ClientPin, Ctap2
    from fido2.server import Fido2Server
    from fido2.webauthn import PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity

    class PinEntry(UserInteraction):
        def request_pin(self, permissions: Any, rp_id: str | None) -> str | None:
            return PIN

    made = manufacture_fido_card()
    server = Fido2Server(
        PublicKeyCredentialRpEntity(id="example.com", name="Example"), attestation="direct"
    )
    user = PublicKeyCredentialUserEntity(id=b"pcsc-user", name="pcsc")
    with Inserted(pcsc_stack, made.card), connected(pcsc_stack.reader) as connection:
        device = fido2_pcsc.CtapPcscDevice(connection, pcsc_stack.reader)
        ClientPin(Ctap2(device)).set_pin(PIN)
        client = Fido2Client(device, DefaultClientDataCollector("https://example.com"), PinEntry())
        options, state = server.register_begin(
            user, resident_key_requirement="required", user_verification="required"
        )
        registration = client.make_credential(options.public_key)
        auth = server.register_complete(state, registration)
        options, state = server.authenticate_begin(user_verification="required")
        assertion = client.get_assertion(options.public_key).get_response(0)
        server.authenticate_complete(state, [auth.credential_data], assertion)

    attestation = registration.response.attestation_object
    client_data_hash = hashlib.sha256(bytes(registration.response.client_data)).digest()
    result = PackedAttestation().verify(
        attestation.att_stmt, attestation.auth_data, client_data_hash
    )
    verify_x509_chain([*result.trust_path, made.root.public_bytes(serialization.Encoding.DER)])
    verified = verify_attestation(bytes(attestation), client_data_hash)
    assert verified.aaguid == TEST_FIDO_MODEL.aaguid
    assert verified.flags & 0x04  # UV: the PIN was used

    response = assertion.response
    kwargs: dict[str, Any] = {
        "credential_public_key": auth.credential_data.public_key,
        "rp_id": "example.com",
        "auth_data": bytes(response.authenticator_data),
        "client_data_hash": hashlib.sha256(bytes(response.client_data)).digest(),
        "signature": response.signature,
        "require_user_verification": True,
    }
    count = verify_assertion(stored_sign_count=verified.sign_count, **kwargs)
    assert count > verified.sign_count
    with pytest.raises(AssertionCounterError):  # the same assertion replayed
        verify_assertion(stored_sign_count=count, **kwargs)


def test_demo_stage_reaches_the_card_through_pcsc(
    pcsc_stack: PcscStack,  # noqa: F811 - the fixture imported above
) -> None:
    fido2_pcsc = require_module("fido2.pcsc", install=PCSC_EXTRA)
    from fido2.ctap2 import Ctap2

    made = manufacture_fido_card()
    # The fixture holds the vpcd reader's lock: the stage must not wait for it.
    with ctap_device(made.card, lock=False) as (device, how):
        assert isinstance(device, fido2_pcsc.CtapPcscDevice), how
        assert how.startswith("through PC/SC")
        assert bytes(Ctap2(device).info.aaguid) == TEST_FIDO_MODEL.aaguid.bytes
    # The card is out when the stage is done: the reader is free for the next user.
    assert wait_for_card(pcsc_stack.reader, present=False) == b""
